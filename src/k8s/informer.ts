// A watched cache of one resource that never gives up: client-node's ListWatch relists on
// 410 Gone by itself but stops on any other error (API server down, network cut), so it
// is restarted here with capped backoff. `synced` resolves after the first full list.
import { ListWatch, type KubernetesListObject, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { describeError } from './client.js';

export interface WatchedOptions<T extends KubernetesObject> {
  /** The Kube's watch starter (kube.watch), so its requests are counted with the rest. */
  watch: Watch;
  /** Collection path, e.g. /apis/kube-portsentry.io/v1alpha1/blockedhosts. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  logger: Logger;
  /** Called (coalesced, at most once per tick) after any add, update, delete or relist. */
  onChange: () => void;
  /**
   * Called at once for each object added, changed or deleted (a relist reports only what
   * differs), so a consumer can keep its own index up to date without rescanning the list.
   */
  onEvent?: (type: 'add' | 'update' | 'delete', obj: T) => void;
}

export class Watched<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  private backoffMs = 500;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private pending = false;
  private markSynced!: () => void;
  /** Resolves once the first list has been read. */
  readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));
  isSynced = false;

  constructor(private readonly options: WatchedOptions<T>) {
    const list = async (): Promise<KubernetesListObject<T>> => {
      const result = await options.list();
      this.isSynced = true;
      this.backoffMs = 500;
      this.markSynced();
      this.changed();
      return result;
    };
    this.lw = new ListWatch<T>(options.path, options.watch, list, false, options.labelSelector, options.fieldSelector);
    for (const verb of ['add', 'update', 'delete'] as const)
      this.lw.on(verb, (obj) => {
        options.onEvent?.(verb, obj);
        this.changed();
      });
    this.lw.on('connect', () => {
      this.backoffMs = 500;
    });
    this.lw.on('error', (err) => this.restart(err));
  }

  start(): void {
    void this.lw.start().catch((err) => this.restart(err));
  }

  list(): readonly T[] {
    return this.lw.list();
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    void this.lw.stop();
  }

  private changed(): void {
    if (this.pending) return;
    this.pending = true;
    setImmediate(() => {
      this.pending = false;
      if (!this.stopped) this.options.onChange();
    });
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    this.options.logger.warn({ path: this.options.path, err: describeError(err), retryInMs: this.backoffMs }, 'watch failed; retrying');
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) void this.lw.start().catch((e) => this.restart(e));
    }, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, 15_000);
  }
}
