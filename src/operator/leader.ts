// Leader election with a coordination.k8s.io Lease, as client-go does it: the holder renews
// every retry period; another replica takes over once it has watched the lease go unrenewed
// for a whole lease duration (by its own clock, so clocks need not agree). Updates carry the
// resourceVersion, so two candidates never both win.
//
// Leading is a deadline, not a flag: a renewal sent at t keeps the lease at least until
// t + leaseDuration for everyone else, so the holder acts until t + leaseDuration minus a
// third of it (room for clocks running at different rates), then steps down by a timer of
// its own, whether or not its requests ever come back. Every lease request carries a
// deadline no later than that.
import type { V1Lease } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { describeError, statusOf, withSignal, type Kube } from '../k8s/client.js';

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
  private deadline: NodeJS.Timeout | undefined;
  private leading = false;
  private stopped = false;
  private observed: { holder: string; renew: string; at: number } | undefined;
  /** Epoch ms until which this replica may act as leader. */
  private actUntil = 0;

  constructor(private readonly o: LeaderOptions) {}

  get isLeader(): boolean {
    return this.leading && Date.now() < this.actUntil;
  }

  private get retryMs(): number {
    return Math.max(200, Math.floor(this.o.leaseDurationMs / 4));
  }

  /** How long a leader may act after sending a renewal the API server accepted. */
  private get actMs(): number {
    return this.o.leaseDurationMs - Math.floor(this.o.leaseDurationMs / 3);
  }

  start(): void {
    void this.tick();
  }

  private schedule(): void {
    if (!this.stopped) this.timer = setTimeout(() => void this.tick(), this.retryMs);
  }

  private async tick(): Promise<void> {
    const sentAt = Date.now();
    // A leader's renewal may take until it must step down anyway; a candidate's, one retry period.
    const budget = this.leading ? Math.max(1, this.actUntil - sentAt) : this.retryMs;
    try {
      if (await this.tryAcquireOrRenew(AbortSignal.timeout(budget))) this.won(sentAt);
    } catch (err) {
      this.o.logger.warn({ err: describeError(err) }, 'lease update failed');
    }
    this.checkDeadline();
    this.schedule();
  }

  /** Whether this replica holds the lease now (acquired or renewed). */
  private async tryAcquireOrRenew(signal: AbortSignal): Promise<boolean> {
    const { kube, namespace, name, identity } = this.o;
    const options = withSignal(signal);
    const now = new Date();
    let lease: V1Lease | undefined;
    try {
      lease = await kube.coordination.readNamespacedLease({ name, namespace }, options);
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.max(1, Math.round(this.o.leaseDurationMs / 1000)),
      renewTime: microTime(now),
    };
    if (!lease) {
      await kube.coordination.createNamespacedLease(
        { namespace, body: { metadata: { name, namespace }, spec: { ...spec, acquireTime: microTime(now), leaseTransitions: 0 } } },
        options,
      );
      return true;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const renew = String(lease.spec?.renewTime ?? '');
    if (!this.observed || this.observed.holder !== holder || this.observed.renew !== renew)
      this.observed = { holder, renew, at: Date.now() };
    const expired = holder === '' || Date.now() - this.observed.at > this.o.leaseDurationMs;
    if (holder !== identity && !expired) return false;
    const transitions = (lease.spec?.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    await kube.coordination.replaceNamespacedLease(
      {
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
      },
      options,
    );
    return true;
  }

  /** A renewal sent at `sentAt` went through: act until sentAt + actMs. */
  private won(sentAt: number): void {
    if (this.stopped) return;
    this.actUntil = sentAt + this.actMs;
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.checkDeadline(), Math.max(0, this.actUntil - Date.now()) + 1);
    if (this.leading) return;
    this.leading = true;
    this.o.logger.info({ lease: this.o.name }, 'became leader');
    this.o.onStarted();
  }

  /** Steps down once the time to act is over (by the timer, even while a request hangs). */
  private checkDeadline(): void {
    if (!this.leading || Date.now() < this.actUntil) return;
    this.leading = false;
    clearTimeout(this.deadline);
    this.o.logger.error('leadership lost: lease not renewed in time');
    this.o.onLost();
  }

  /** Stops, and hands the lease over at once if held. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    clearTimeout(this.deadline);
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
