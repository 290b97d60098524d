// What the operator does with each source of an agent's report, as one chain of rules:
// protected addresses are never judged, the correlator adds the report to the source's
// activity, a source already blocked only gets its status refreshed, the evidence decides
// (block-decision.ts), and the block budget has the last word. Pure: the report, what is
// already blocked and the clock come in, a verdict with what its log line needs goes out.
import { BlockBudget } from '../engine/block-budget.js';
import type { Action, ClusterEvidence } from '../policy/types.js';
import { decideClusterBlock, type ClusterDecision } from './block-decision.js';
import { Correlator, nodesTouching, portNames, type SourceActivity } from './correlator.js';
import type { ProtectedSet } from './protected-set.js';
import type { SourceReport } from './report.js';

/** What of a cluster-scoped policy the judge reads. */
export interface JudgedPolicy {
  name: string;
  triggerCount: number;
  windowMs: number;
  tcp: Action;
  udp: Action;
  verifiedOnly: boolean;
  evidence: ClusterEvidence;
  maxBlocksPerMinute: number;
}

/** What the operator already does about a source. */
export type Standing = 'blocked' | 'creating' | 'none';

export type Verdict =
  | { kind: 'protected'; reason: string }
  /** Blocked already: its BlockedHost's status follows the activity. */
  | { kind: 'blocked'; activity: SourceActivity }
  /** A creation of its BlockedHost is under way: the report waits for it. */
  | { kind: 'creating' }
  | { kind: 'none' }
  /** `announce`: the first time for this activity (log and count once). */
  | { kind: 'alert'; activity: SourceActivity; tcp: boolean; summary: string; announce: boolean }
  | { kind: 'node-only'; activity: SourceActivity; summary: string; announce: boolean }
  | { kind: 'rate-limited'; activity: SourceActivity; announce: boolean }
  | { kind: 'block'; activity: SourceActivity; tcp: boolean; summary: string; basis: Extract<ClusterDecision, { kind: 'block' }>['basis']; reason: string };

/** Announcements remembered per source before the memory is started afresh. */
const MAX_ANNOUNCED = 10_000;

export class ReportJudge {
  readonly correlator: Correlator;
  private readonly budgets = new Map<string, BlockBudget>();
  /** Sources alerted on, and kept to their node, by first seen: announced once per activity. */
  private readonly alerted = new Map<string, number>();
  private readonly heldToNode = new Map<string, number>();

  constructor(maxTrackedSources: number) {
    this.correlator = new Correlator(maxTrackedSources);
  }

  judge(node: string, policy: JudgedPolicy, r: SourceReport, standing: (source: string) => Standing, guard: ProtectedSet, now: number): Verdict {
    const why = guard.reason(r.source);
    if (why) return { kind: 'protected', reason: why };
    const { activity, triggered } = this.correlator.add(node, policy.name, r, { count: policy.triggerCount, windowMs: policy.windowMs }, now);
    const state = standing(r.source);
    if (state === 'blocked') return { kind: 'blocked', activity };
    const ports = portNames(activity);
    const tcp = ports.some((p) => p.startsWith('tcp/'));
    const decision = decideClusterBlock(
      { triggered, blockedLocally: activity.blockedLocally, verifiedNodes: activity.verifiedNodes.size, nodes: nodesTouching(activity) },
      { action: tcp ? policy.tcp : policy.udp, verifiedOnly: policy.verifiedOnly, evidence: policy.evidence },
    );
    if (decision.kind === 'none') return decision;
    const summary = `${activity.touches.size} distinct probe(s) on ${activity.nodes.size} node(s): ${ports.slice(0, 10).join(', ')}`;
    if (decision.kind === 'alert') {
      const announce = !activity.blockedLocally && once(this.alerted, r.source, activity.firstSeen);
      return { kind: 'alert', activity, tcp, summary, announce };
    }
    if (decision.kind === 'node-only') return { kind: 'node-only', activity, summary, announce: once(this.heldToNode, r.source, activity.firstSeen) };
    let budget = this.budgets.get(policy.name);
    if (!budget) this.budgets.set(policy.name, (budget = new BlockBudget(policy.maxBlocksPerMinute, now)));
    budget.configure(policy.maxBlocksPerMinute);
    if (state === 'creating') return { kind: 'creating' };
    // As on the nodes (block-budget.ts): a flood of one-shot sources spends only what
    // first-seen sources may, never what a verified or a returning source needs.
    if (!budget.take(now, decision.basis === 'verified' ? 'verified' : activity.refused ? 'returning' : 'first')) {
      const announce = !activity.refused;
      activity.refused = true;
      return { kind: 'rate-limited', activity, announce };
    }
    const trigger = activity.blockedLocally && activity.touches.size <= policy.triggerCount ? 'node trigger' : 'cluster-wide trigger';
    return { kind: 'block', activity, tcp, summary, basis: decision.basis, reason: `${trigger}: ${summary}; ${decision.basis}`.slice(0, 1024) };
  }

  /** Called after each report: bounds the announcement memory. */
  endReport(): void {
    if (this.alerted.size > MAX_ANNOUNCED) this.alerted.clear();
    if (this.heldToNode.size > MAX_ANNOUNCED) this.heldToNode.clear();
  }

  /** A source's block is gone: its activity starts afresh. */
  forget(source: string): void {
    this.correlator.forget(source);
  }

  /** Forgets sources idle longer than `windowMs`. */
  expire(now: number, windowMs: number): void {
    this.correlator.expire(now, windowMs);
  }
}

function once(seen: Map<string, number>, source: string, firstSeen: number): boolean {
  if (seen.get(source) === firstSeen) return false;
  seen.set(source, firstSeen);
  return true;
}
