// Leader election with a coordination.k8s.io Lease, as client-go does it: the holder renews
// every retry period; another replica takes over once it has watched the lease go unrenewed
// for a whole lease duration (by its own clock, so clocks need not agree). Updates carry the
// resourceVersion, so two candidates never both win.
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { describeError, statusOf, type Kube } from '../k8s/client.js';

/** Lease times are MicroTime: the API server wants six fractional digits. */
function microTime(d: Date | string | undefined): Date {
  const date = d === undefined ? new Date() : new Date(d);
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z') as unknown as Date;
}

export interface LeaderOptions {
  kube: Kube;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  logger: Logger;
  onStarted: () => void;
  /** Leadership lost (renewal failed past the deadline): the caller must stop leading. */
  onLost: () => void;
}

export class LeaderElector {
  private timer: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;
  private observed: { holder: string; renew: string; at: number } | undefined;
  private lastRenewed = 0;

  constructor(private readonly o: LeaderOptions) {}

  get isLeader(): boolean {
    return this.leading;
  }

  private get retryMs(): number {
    return Math.max(200, Math.floor(this.o.leaseDurationMs / 4));
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryMs);
  }

  private async tick(): Promise<void> {
    try {
      await this.tryAcquireOrRenew();
    } catch (err) {
      this.o.logger.warn({ err: describeError(err) }, 'lease update failed');
    }
    // A leader that could not renew within two thirds of the lease steps down before
    // anyone else may take over.
    if (this.leading && Date.now() - this.lastRenewed > (this.o.leaseDurationMs * 2) / 3) {
      this.leading = false;
      this.o.logger.error('leadership lost: lease not renewed in time');
      this.o.onLost();
    }
    this.schedule();
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const { kube, namespace, name, identity } = this.o;
    const now = new Date();
    let lease: V1Lease | undefined;
    try {
      lease = await kube.coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.round(this.o.leaseDurationMs / 1000)),
      renewTime: microTime(now),
    };
    if (!lease) {
      await kube.coordination.createNamespacedLease({
        namespace,
        body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 } },
      });
      this.won();
      return;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = String(lease.spec?.renewTime ?? '');
    if (!this.observed || this.observed.holder !== holder || this.observed.renew !== renew)
      this.observed = { holder, renew, at: Date.now() };
    const expired = holder === '' || Date.now() - this.observed.at > this.o.leaseDurationMs;
    if (holder !== identity && !expired) return;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    await kube.coordination.replaceNamespacedLease({
      name,
      namespace,
      body: {
        metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
        spec: {
          ...spec,
          acquireTime: microTime(holder === identity ? lease.spec?.acquireTime : now),
          leaseTransitions: transitions,
        },
      },
    });
    this.won();
  }

  private won(): void {
    this.lastRenewed = Date.now();
    if (this.leading) return;
    this.leading = true;
    this.o.logger.info({ identity: this.o.identity, lease: this.o.name }, 'became leader');
    this.o.onStarted();
  }

  /** Stops, and hands the lease over at once if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    const { kube, namespace, name } = this.o;
    try {
      const lease = await kube.coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== this.o.identity) return;
      const spec = lease.spec;
      await kube.coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          metadata: { name, namespace, resourceVersion: lease.metadata?.resourceVersion },
          spec: { ...spec, holderIdentity: '', acquireTime: microTime(spec.acquireTime), renewTime: microTime(spec.renewTime) },
        },
      });
    } catch (err) {
      this.o.logger.warn({ err: describeError(err) }, 'could not release the lease');
    }
  }
}
