// Agent reports to BlockedHosts: each source of a report is judged (cluster/report-judge.ts)
// by the policy its node runs, and the verdict carried out: a BlockedHost created, its
// status refreshed, an alert or a refusal logged and counted.
import { portNames, type SourceActivity } from '../cluster/correlator.js';
import type { JudgedPolicy, ReportJudge, Standing } from '../cluster/report-judge.js';
import type { Report } from '../cluster/report.js';
import { GROUP, VERSION } from '../k8s/api-schemas.js';
import { custom, ignoreStatus, mergePatch, PLURALS, statusOf } from '../k8s/client.js';
import { blockedHostName, LABEL_MANAGED_BY, MANAGED_BY, type BlockedHostObject, type BlockedHostStatus } from '../k8s/objects.js';
import type { OperatorContext, ValidPolicy } from './context.js';
import { EventRecorder } from './events.js';
import type { PolicyLoop } from './policy-loop.js';
import type { ReportTrace } from './report-server.js';

/** A BlockedHost's status is written at most this often while its source keeps probing. */
const STATUS_MIN_INTERVAL_MS = 2000;

export class ReportLoop {
  private readonly events: EventRecorder;
  /** BlockedHost creations under way, by address: a report waits for them before its 200. */
  private readonly creating = new Map<string, Promise<void>>();
  private readonly statusWrittenAt = new Map<string, number>();
  /** The policy each node last named other than its own (logged once per change). */
  private readonly misnamed = new Map<string, string>();

  constructor(
    private readonly ctx: OperatorContext,
    private readonly policies: PolicyLoop,
    private readonly judge: ReportJudge,
    private readonly onDetectionChange: () => void,
  ) {
    this.events = new EventRecorder(ctx.kube, 'kube-portsentry-operator', ctx.options.identity, ctx.log);
  }

  async accept(report: Report, trace?: ReportTrace): Promise<void> {
    const { log, metrics } = this.ctx;
    const now = Date.now();
    if (report.host) this.ctx.recordHost(report.node, report.host);
    // A report is judged by the policy the node runs, never by the one it names: an agent
    // must not pick a policy of other nodes that blocks on less evidence. A node that has
    // just changed policy names the old one for a moment: its probes count under the new.
    const valid = this.policies.policyOf(report.node);
    if (this.policies.noteDetection(report, valid?.name, now)) this.onDetectionChange();
    if (report.policy === null || report.sources.length === 0) return;
    if (!valid) {
      log.warn({ node: report.node, policy: report.policy }, 'report from a node no valid policy selects; its sources ignored');
      return;
    }
    if (report.policy !== valid.name && this.misnamed.get(report.node) !== report.policy) {
      this.misnamed.set(report.node, report.policy);
      log.warn({ node: report.node, named: report.policy, policy: valid.name }, "report names another policy than its node's; judged by its node's");
    }
    const spec = valid.policy.spec;
    if (spec.response.scope !== 'cluster') return;
    const policy: JudgedPolicy = {
      name: valid.name,
      triggerCount: spec.trigger.count,
      windowMs: valid.policy.windowMs,
      tcp: spec.response.tcp,
      udp: spec.response.udp,
      verifiedOnly: spec.response.verifiedOnly,
      evidence: spec.response.clusterEvidence,
      maxBlocksPerMinute: spec.response.maxBlocksPerMinute,
    };
    const standing = (source: string): Standing => (this.ctx.blockedHostFor(source) ? 'blocked' : this.creating.has(source) ? 'creating' : 'none');
    const guard = this.ctx.protectedSet();
    // The creations this report depends on, its own and those already under way for its sources.
    const writes: Promise<void>[] = [];
    for (const r of report.sources) {
      const v = this.judge.judge(report.node, policy, r, standing, guard, now);
      switch (v.kind) {
        case 'blocked':
          this.updateStatusSoon(r.source, v.activity);
          break;
        case 'creating':
          writes.push(this.creating.get(r.source)!);
          break;
        case 'alert':
          if (!v.announce) break;
          metrics.scans.inc({ protocol: v.tcp ? 'tcp' : 'udp' });
          log.warn({ source: r.source, policy: policy.name, nodes: [...v.activity.nodes] }, `cluster-wide scan detected (alert only): ${v.summary}`);
          break;
        case 'node-only':
          if (!v.announce) break;
          metrics.uncorroborated.inc({ policy: policy.name });
          log.info(
            { source: r.source, policy: policy.name, nodes: [...v.activity.nodes] },
            `unverified detection kept to the node that saw it: no handshake proves its source, and no second node reported it (${v.summary})`,
          );
          break;
        case 'rate-limited':
          metrics.blocksRateLimited.inc({ policy: policy.name });
          if (v.announce) log.warn({ source: r.source, policy: policy.name }, 'cluster block refused: maxBlocksPerMinute reached');
          break;
        case 'block': {
          metrics.scans.inc({ protocol: v.tcp ? 'tcp' : 'udp' });
          // The report's 200 waits for the creation alone; its status and Events follow.
          const creation = this.createBlockedHost(v.activity, valid, v.reason, now, trace);
          const created = creation.then(() => undefined);
          this.creating.set(r.source, created);
          this.ctx.runFor(r.source, () =>
            creation.then((bh) => (bh ? this.describeBlock(bh, v.activity, v.reason, `${v.summary}; ${v.basis}`) : undefined)).finally(() => this.creating.delete(r.source)),
          );
          writes.push(created);
          break;
        }
      }
    }
    this.judge.endReport();
    await Promise.all(writes);
  }

  /** Creates the BlockedHost; resolves with it, or null when one was there already. */
  private async createBlockedHost(a: SourceActivity, valid: ValidPolicy, reason: string, now: number, trace?: ReportTrace): Promise<BlockedHostObject | null> {
    const name = blockedHostName(a.source);
    const expiresAt = new Date(now + valid.policy.durationMs).toISOString().replace(/\.\d+Z$/, 'Z');
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'BlockedHost',
      metadata: { name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } },
      spec: { address: a.source, reason, policy: valid.name, source: 'detected', expiresAt },
    };
    const createAt = process.hrtime.bigint();
    let created: BlockedHostObject;
    try {
      created = (await this.ctx.kube.custom.createClusterCustomObject({ ...custom(PLURALS.blockedHosts), body })) as BlockedHostObject;
    } catch (err) {
      if (statusOf(err) === 409) return null; // someone (a manual block, or an earlier leader) got there first
      throw err;
    }
    this.ctx.indexBlockedHost(name, created);
    this.ctx.log.warn({ source: a.source, blockedHost: name, policy: valid.name, expiresAt, nodes: [...a.nodes] }, 'cluster-wide block');
    // Stage timings (CLOCK_MONOTONIC ns) for the cluster bench.
    if (trace && this.ctx.log.isLevelEnabled('debug'))
      this.ctx.log.debug(
        {
          source: a.source,
          receivedAtNs: String(trace.receivedAt),
          authenticatedAtNs: String(trace.authenticatedAt),
          createAtNs: String(createAt),
          createdAtNs: String(process.hrtime.bigint()),
        },
        'block timings',
      );
    return created;
  }

  /** The new BlockedHost's status and Events. */
  private async describeBlock(created: BlockedHostObject, a: SourceActivity, reason: string, evidence: string): Promise<void> {
    const name = created.metadata.name;
    await this.writeStatus(name, a);
    const target = { apiVersion: `${GROUP}/${VERSION}`, kind: 'BlockedHost', name, uid: created.metadata.uid };
    this.events.record(target, 'Warning', 'Blocked', `${a.source} blocked on every node until ${created.spec.expiresAt}; ${reason}`);
    // One Event for every reporting node together, its count the number of nodes (as the
    // Kubernetes event recorder folds repeats): a scan of 1,000 nodes costs two writes.
    const nodes = [...a.nodes].sort();
    const listed = `${nodes.slice(0, 10).join(', ')}${nodes.length > 10 ? ` and ${nodes.length - 10} more` : ''}`;
    this.events.record(target, 'Warning', 'ScanDetected', `scan from ${a.source} seen on ${nodes.length} node(s) (${listed}): ${evidence}`, nodes.length);
  }

  private updateStatusSoon(address: string, a: SourceActivity): void {
    const bh = this.ctx.blockedHostFor(address);
    if (!bh || this.ctx.inFlight.has(address)) return;
    const last = this.statusWrittenAt.get(address) ?? 0;
    if (Date.now() - last < STATUS_MIN_INTERVAL_MS) return;
    this.ctx.runFor(address, () => this.writeStatus(bh.metadata.name, a));
  }

  private async writeStatus(name: string, a: SourceActivity): Promise<void> {
    this.statusWrittenAt.set(a.source, Date.now());
    if (this.statusWrittenAt.size > 100_000) this.statusWrittenAt.clear();
    await this.ctx.kube.custom
      .patchClusterCustomObjectStatus({ ...custom(PLURALS.blockedHosts), name, body: { status: blockedHostStatus(a) } }, mergePatch)
      .catch(ignoreStatus(404));
  }
}

/** A BlockedHost's status from its source's activity. */
function blockedHostStatus(a: SourceActivity): BlockedHostStatus {
  const iso = (ms: number) => new Date(ms).toISOString();
  return {
    firstSeen: iso(a.firstSeen),
    lastSeen: iso(a.lastSeen),
    probes: a.probes,
    ports: portNames(a).slice(0, 1024),
    scanTypes: [...a.types].sort(),
    reportingNodes: [...a.nodes].sort().slice(0, 5000),
  };
}
