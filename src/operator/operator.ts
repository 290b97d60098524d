// The operator: policies to nodes, agent reports to BlockedHosts, BlockedHosts to optional
// network-policy outputs, expiry. Every replica serves reports and metrics; only the Lease
// holder acts (others answer reports with 503 so agents retry, and reach the leader). This
// file wires the loops together; each loop is a file of its own sharing OperatorContext.
import type { Server } from 'node:http';
import { ReportJudge } from '../cluster/report-judge.js';
import { describeError } from '../k8s/client.js';
import { apiServerKeys } from './api-server-keys.js';
import { OperatorContext, type OperatorOptions, type Pass } from './context.js';
import { ExpiryLoop } from './expiry-loop.js';
import { LeaderElector } from './leader.js';
import { OutputLoop } from './output-loop.js';
import { PolicyLoop } from './policy-loop.js';
import { ReportLoop } from './report-loop.js';
import { startReportServer } from './report-server.js';
import { tokenReviewAuthenticator } from './token-authenticator.js';

export type { OperatorOptions } from './context.js';
export { NODE_ANNOTATION } from './policy-loop.js';

/** A failed pass is tried again after this long. */
const RETRY_MS = 2000;

export class Operator {
  private readonly ctx: OperatorContext;
  private readonly elector: LeaderElector;
  private readonly policyLoop: PolicyLoop;
  private readonly reportLoop: ReportLoop;
  private readonly expiryLoop: ExpiryLoop;
  private readonly outputLoop: OutputLoop;
  private server: Server | undefined;
  private timers: NodeJS.Timeout[] = [];
  private dirty = { policies: false, outputs: false };
  private flushing = false;
  private running = false;

  constructor(private readonly o: OperatorOptions) {
    this.ctx = new OperatorContext(o, {
      markDirty: (pass) => this.markDirty(pass),
      onBlockedHosts: () => {
        const { detected, manual } = this.ctx.index.counts;
        o.metrics.blockedHosts.set({ source: 'detected' }, detected);
        o.metrics.blockedHosts.set({ source: 'manual' }, manual);
        this.markDirty('outputs');
      },
    });
    const judge = new ReportJudge(o.maxTrackedSources);
    const detectionChanged = () => this.markDirty('policies');
    this.policyLoop = new PolicyLoop(this.ctx);
    this.reportLoop = new ReportLoop(this.ctx, this.policyLoop, judge, detectionChanged);
    this.expiryLoop = new ExpiryLoop(this.ctx, this.policyLoop, judge, detectionChanged, () => this.isLeader && this.running);
    this.outputLoop = new OutputLoop(this.ctx);
    this.elector = new LeaderElector({
      kube: o.kube,
      namespace: o.namespace,
      name: o.leaseName,
      identity: o.identity,
      leaseDurationMs: o.leaseDurationMs,
      logger: o.logger,
      onStarted: () => {
        o.metrics.leader.set(1);
        this.markDirty('policies');
        this.markDirty('outputs');
      },
      onLost: () => {
        o.metrics.leader.set(0);
        // Half-done leader work must not race the new leader: start over as a follower.
        o.logger.fatal('lost leadership; exiting so a clean replica takes over');
        process.exitCode = 1;
        process.kill(process.pid, 'SIGTERM');
      },
    });
  }

  /** The agents' ServiceAccount, as tokens and TokenReviews name it. */
  private get agentUser(): string {
    return `system:serviceaccount:${this.o.namespace}:${this.o.agentServiceAccount}`;
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  ready(): string | null {
    if (!this.running) return 'starting';
    if (!this.ctx.synced) return 'caches not synced';
    return null;
  }

  async start(): Promise<void> {
    const { o } = this;
    o.metrics.leader.set(0);
    const synced = this.ctx.start();
    this.server = await startReportServer({
      address: o.listenAddress,
      ...(o.tls ? { tls: o.tls } : {}),
      authenticate:
        o.authenticate ??
        tokenReviewAuthenticator(o.kube, { audience: o.tokenAudience, subject: this.agentUser, keys: apiServerKeys(o.kube, o.logger) }, o.logger),
      allowedUser: this.agentUser,
      allowUnboundTokens: o.allowUnboundTokens ?? false,
      // Reports are only useful once the caches are there to act on them.
      isLeader: () => this.isLeader && this.ready() === null,
      accept: (r, trace) => this.reportLoop.accept(r, trace),
      logger: o.logger,
      metrics: o.metrics,
    });
    await synced;
    this.running = true;
    this.elector.start();
    this.timers.push(
      setInterval(() => {
        if (this.isLeader && this.running) this.expiryLoop.tick(Date.now());
      }, 1000),
    );
    o.logger.info({ reports: o.listenAddress }, 'operator ready');
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.closeAllConnections?.();
    await Promise.allSettled(this.ctx.inFlight.values());
    await this.elector.stop();
    this.ctx.stop();
  }

  private markDirty(pass: Pass): void {
    if (pass === 'policies') this.policyLoop.invalidate();
    this.dirty[pass] = true;
    setImmediate(() => void this.flush());
  }

  /** Runs the passes asked for, one at a time, while this replica leads. */
  private async flush(): Promise<void> {
    if (this.flushing || !this.running || !this.isLeader) return;
    this.flushing = true;
    try {
      while (this.dirty.policies || this.dirty.outputs) {
        if (this.dirty.policies) {
          this.dirty.policies = false;
          await this.timed('policies', () => this.policyLoop.reconcile());
        }
        if (this.dirty.outputs) {
          this.dirty.outputs = false;
          await this.timed('outputs', () => this.outputLoop.reconcile());
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async timed(pass: Pass, fn: () => Promise<void>): Promise<void> {
    const kind = pass === 'policies' ? 'policy' : 'output';
    const end = this.o.metrics.reconcileDuration.startTimer({ kind });
    try {
      await fn();
      this.o.metrics.reconciles.inc({ kind, result: 'ok' });
    } catch (err) {
      this.o.metrics.reconciles.inc({ kind, result: 'error' });
      this.o.logger.error({ kind, err: describeError(err) }, 'reconcile failed; retrying');
      setTimeout(() => this.markDirty(pass), RETRY_MS).unref();
    } finally {
      end();
    }
  }
}
