// A watched cache of one resource that never gives up: client-node's ListWatch relists on
// 410 Gone by itself but stops on any other error (API server down, network cut), so it
// is restarted here with exponential backoff (backoff.ts), reset only once a watch has
// delivered an event or a list succeeded: client-node reports "connect" before every
// attempt, failed ones included. A watch that stays silent past its server-side timeout
// (a half-open connection) is aborted and restarted. `synced` resolves after the first
// full list.
import { ListWatch, type KubernetesListObject, type KubernetesObject, type Watch } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { watchBackoffMs } from './backoff.js';
import { describeError } from './client.js';

/** The API server ends each watch after this long, so a live watch is never silent longer. */
const WATCH_TIMEOUT_SECONDS = 120;

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
  /**
   * Keeps only what the consumer reads of each object, listed or watched: the cache of a
   * large collection (every pod) then costs its fields, not whole objects.
   */
  lean?: (obj: T) => T;
  /**
   * Server-side timeout of each watch (WATCH_TIMEOUT_SECONDS). A watch silent for this much
   * plus its grace (30 s at most) is taken for dead and restarted.
   */
  watchTimeoutSeconds?: number;
}

type WatchCall = Watch['watch'];

export class Watched<T extends KubernetesObject> {
  private readonly lw: ListWatch<T>;
  /** Failed attempts since the last event or successful list. */
  private failures = 0;
  private stopped = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private pending = false;
  private markSynced!: () => void;
  /** Resolves once the first list has been read. */
  readonly synced = new Promise<void>((resolve) => (this.markSynced = resolve));
  isSynced = false;

  constructor(private readonly options: WatchedOptions<T>) {
    const lean = options.lean;
    const list = async (): Promise<KubernetesListObject<T>> => {
      const listed = await options.list();
      const result = lean ? { ...listed, items: listed.items.map(lean) } : listed;
      this.isSynced = true;
      this.failures = 0;
      this.markSynced();
      this.changed();
      return result;
    };
    const watch = { watch: this.watchWithLiveness(options.watch.watch.bind(options.watch), options.watchTimeoutSeconds ?? WATCH_TIMEOUT_SECONDS, lean) };
    this.lw = new ListWatch<T>(options.path, watch as Watch, list, false, options.labelSelector, options.fieldSelector);
    for (const verb of ['add', 'update', 'delete'] as const)
      this.lw.on(verb, (obj) => {
        options.onEvent?.(verb, obj);
        this.changed();
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

  /**
   * Each watch asks the server to end it after `timeoutSeconds` and for bookmarks; anything
   * it delivers re-arms a timer, and a watch silent past the timeout and grace is aborted
   * and reported failed, so the ListWatch restarts it.
   */
  private watchWithLiveness(inner: WatchCall, timeoutSeconds: number, lean?: (obj: T) => T): WatchCall {
    const silentMs = (timeoutSeconds + Math.min(30, timeoutSeconds)) * 1000;
    return async (path, query, callback, done) => {
      let timer: NodeJS.Timeout | undefined;
      const started: { controller?: AbortController } = {};
      let ended = false;
      const finish = (err: unknown) => {
        clearTimeout(timer);
        if (ended) return;
        ended = true;
        done(err);
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          finish(new Error(`watch silent for ${silentMs / 1000} s; restarting it`));
          started.controller?.abort();
        }, silentMs);
      };
      arm();
      const controller = await inner(
        path,
        { ...query, timeoutSeconds, allowWatchBookmarks: true },
        (phase, obj, raw) => {
          arm();
          if (phase !== 'ERROR') this.failures = 0;
          callback(phase, lean && phase !== 'ERROR' && phase !== 'BOOKMARK' ? lean(obj as T) : obj, raw);
        },
        finish,
      );
      started.controller = controller;
      if (ended) controller.abort();
      return controller;
    };
  }

  private restart(err: unknown): void {
    if (this.stopped) return;
    const delayMs = watchBackoffMs(this.failures++, Math.random());
    this.options.logger.warn({ path: this.options.path, err: describeError(err), retryInMs: delayMs }, 'watch failed; retrying');
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => {
      if (!this.stopped) void this.lw.start().catch((e) => this.restart(e));
    }, delayMs);
  }
}
