// A watched cache of one resource that never gives up: a list, then a watch from its
// resourceVersion (a relist on 410 Gone, a new watch from the last version when the server
// ends one), restarted on any other error (API server down, network cut) with exponential
// backoff (backoff.ts), reset only once a watch has delivered an event or a list succeeded.
// A watch that stays silent past its server-side timeout (a half-open connection) is
// aborted and restarted. `synced` resolves after the first full list. Objects are kept as
// the API sent them (JSON), keyed by namespace and name.
import type { KubernetesListObject, KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import type { ApiConnection } from './api-connection.js';
import { watchBackoffMs } from './backoff.js';
import { describeError, statusOf } from './api-errors.js';

/** The API server ends each watch after this long, so a live watch is never silent longer. */
const WATCH_TIMEOUT_SECONDS = 120;

export interface WatchedOptions<T extends KubernetesObject> {
  /** Where lists and watches go (and are counted). */
  api: ApiConnection;
  /** Collection path, e.g. /apis/kube-portsentry.io/v1alpha1/blockedhosts. */
  path: string;
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
  /** Objects per list request (LIST_PAGE): a large collection is read in pages, not one answer. */
  listPage?: number;
}

/** A list of 100,000 BlockedHosts is 20 answers of a few MB, not one of 150 MB held at once with its objects. */
const LIST_PAGE = 5000;

type WatchCall = ApiConnection['watch'];

const keyOf = (obj: KubernetesObject): string => `${obj.metadata?.namespace ?? ''}/${obj.metadata?.name ?? ''}`;

export class Watched<T extends KubernetesObject> {
  private objects = new Map<string, T>();
  /** Where the next watch starts; empty: list first. */
  private resourceVersion = '';
  private controller: AbortController | undefined;
  private readonly watchCall: WatchCall;
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
    const api = options.api;
    this.watchCall = this.watchWithLiveness(api.watch.bind(api), options.watchTimeoutSeconds ?? WATCH_TIMEOUT_SECONDS);
  }

  start(): void {
    this.stopped = false;
    void this.run();
  }

  list(): readonly T[] {
    return [...this.objects.values()];
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.controller?.abort();
    this.controller = undefined;
  }

  private selectors(): Record<string, string> {
    const { labelSelector, fieldSelector } = this.options;
    return { ...(labelSelector ? { labelSelector } : {}), ...(fieldSelector ? { fieldSelector } : {}) };
  }

  /** Lists when there is no version to watch from, then watches; a failure restarts it later. */
  private async run(): Promise<void> {
    if (this.stopped) return;
    try {
      if (!this.resourceVersion) await this.relist();
      if (this.stopped) return;
      const query = { ...this.selectors(), resourceVersion: this.resourceVersion };
      const controller = await this.watchCall(this.options.path, query, (type, obj) => this.onWatchEvent(type, obj), (err) => this.watchEnded(err));
      // Stopped while the watch was being opened: it must not outlive stop().
      if (this.stopped) controller.abort();
      else this.controller = controller;
    } catch (err) {
      this.restart(err);
    }
  }

  private async relist(): Promise<void> {
    const lean = this.options.lean;
    const items: T[] = [];
    let version = '';
    let next: string | undefined;
    do {
      const query = new URLSearchParams({ ...this.selectors(), limit: String(this.options.listPage ?? LIST_PAGE), ...(next ? { continue: next } : {}) });
      const page = (await this.options.api.request('GET', `${this.options.path}?${query}`)) as KubernetesListObject<T>;
      for (const obj of page.items) items.push(lean ? lean(obj) : obj);
      // Every page carries the version of the first one's snapshot.
      version = page.metadata?.resourceVersion ?? version;
      next = (page.metadata as { continue?: string } | undefined)?.continue || undefined;
    } while (next);
    // A relist reports only what differs from the cache.
    const seen = new Set<string>();
    for (const obj of items) {
      seen.add(keyOf(obj));
      this.put(obj);
    }
    for (const [key, obj] of this.objects)
      if (!seen.has(key)) {
        this.objects.delete(key);
        this.emit('delete', obj);
      }
    this.resourceVersion = version;
    this.isSynced = true;
    this.failures = 0;
    this.markSynced();
    this.changed();
  }

  private put(obj: T): void {
    const key = keyOf(obj);
    const before = this.objects.get(key);
    const version = obj.metadata?.resourceVersion;
    if (before && version !== undefined && before.metadata?.resourceVersion === version) return;
    this.objects.set(key, obj);
    this.emit(before ? 'update' : 'add', obj);
  }

  private emit(type: 'add' | 'update' | 'delete', obj: T): void {
    this.options.onEvent?.(type, obj);
    this.changed();
  }

  private onWatchEvent(type: string, raw: unknown): void {
    if (this.stopped) return;
    const obj = raw as T & { code?: number };
    if (type === 'ERROR') {
      // 410 Gone: the version is too old; the watch ends and a relist follows.
      if (obj?.code === 410) this.resourceVersion = '';
      return;
    }
    this.failures = 0;
    const lean = this.options.lean;
    if (type === 'ADDED' || type === 'MODIFIED') this.put(lean ? lean(obj) : obj);
    else if (type === 'DELETED') {
      const key = keyOf(obj);
      const before = this.objects.get(key);
      if (before) {
        this.objects.delete(key);
        this.emit('delete', lean ? lean(obj) : obj);
      }
    }
    const version = obj?.metadata?.resourceVersion;
    if (version) this.resourceVersion = version;
  }

  private watchEnded(err: unknown): void {
    this.controller = undefined;
    if (this.stopped) return;
    if (err && statusOf(err) !== 410) return this.restart(err);
    if (err) this.resourceVersion = '';
    void this.run();
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
   * and reported failed, so it is restarted.
   */
  private watchWithLiveness(inner: WatchCall, timeoutSeconds: number): WatchCall {
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
        (type, obj) => {
          arm();
          callback(type, obj);
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
    this.restartTimer = setTimeout(() => void this.run(), delayMs);
  }
}
