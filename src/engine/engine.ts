// The decision engine: pure logic, no I/O. Each probe is ignored, counted, or, once its
// source passes the trigger, answered with an alert or a response (block or command),
// once per source while the response lasts.
import type { Probe, ProbeType } from './probe.js';
import { addressOf, type Address } from '../net/address.js';
import type { Cidr } from '../net/ip.js';
import type { CompiledPolicy } from '../policy/compiled.js';
import type { Action, Protocol } from '../policy/types.js';
import { IpTrie } from '../net/ip-trie.js';
import { BlockBudget } from './block-budget.js';
import { SourceTracker, type SourceState } from './tracker.js';

export interface EngineConfig {
  triggerCount: number;
  windowMs: number;
  maxTrackedSources: number;
  actions: Record<Protocol, Action>;
  durationMs: number;
  verifiedOnly: boolean;
  maxBlocksPerMinute: number;
  ignore: readonly Cidr[];
}

export function engineConfig(policy: CompiledPolicy): EngineConfig {
  const { spec } = policy;
  return {
    triggerCount: spec.trigger.count,
    windowMs: policy.windowMs,
    maxTrackedSources: spec.trigger.maxTrackedSources,
    actions: { tcp: spec.response.tcp, udp: spec.response.udp },
    durationMs: policy.durationMs,
    verifiedOnly: spec.response.verifiedOnly,
    maxBlocksPerMinute: spec.response.maxBlocksPerMinute,
    ignore: policy.ignore,
  };
}

/** A response in force against one source. */
export interface BlockRecord {
  /** The probe's source, as it carried it. */
  source: Address;
  action: 'block' | 'command';
  /** The probe that triggered it. */
  protocol: Protocol;
  port: number;
  mode: Probe['mode'];
  type: ProbeType;
  verified: boolean;
  since: number;
  until: number;
}

export type AlertReason = 'policy' | 'unverified' | 'rate-limited';

/**
 * `distinct`: the source's distinct probes in the window. An alert or a response carries
 * what its log line and block entry need: the probes ("tcp/79", oldest first) and types.
 */
export type Decision =
  | { kind: 'ignored'; reason: 'ignore-list' | 'own-address' | 'protected' }
  | { kind: 'counted'; distinct: number }
  | { kind: 'alert'; reason: AlertReason; distinct: number; ports: string[] }
  | { kind: 'respond'; block: BlockRecord; distinct: number; ports: string[]; types: ProbeType[] }
  /** Already answered: blocked (`blocked`), or alerted (for the policy, or a refused block) within the window. */
  | { kind: 'suppressed'; distinct: number; blocked?: boolean };

export class Engine {
  private config: EngineConfig;
  private ignore: IpTrie;
  private own = new Set<string>();
  private protectedTrie = new IpTrie();
  /** Blocks in force that the engine did not decide (manual ones): their sources are already answered. */
  private held = new IpTrie();
  private readonly tracker: SourceTracker;
  private readonly budget: BlockBudget;
  private readonly active = new Map<string, BlockRecord>();

  constructor(config: EngineConfig, now = Date.now()) {
    this.config = config;
    this.ignore = IpTrie.of(config.ignore);
    this.tracker = new SourceTracker(config.maxTrackedSources, config.windowMs);
    this.budget = new BlockBudget(config.maxBlocksPerMinute, now);
  }

  /** Applies a new policy without losing tracked sources or blocks in force. */
  reconfigure(config: EngineConfig): void {
    this.config = config;
    this.ignore = IpTrie.of(config.ignore);
    this.tracker.uncheckAll();
    this.tracker.configure(config.maxTrackedSources, config.windowMs);
    this.budget.configure(config.maxBlocksPerMinute);
  }

  /** The host's own addresses (canonical text): never counted, whatever the policy says. */
  setOwnAddresses(addresses: Iterable<string>): void {
    const next = new Set(addresses);
    if (next.size === this.own.size && [...next].every((a) => this.own.has(a))) return;
    this.own = next;
    this.tracker.uncheckAll();
  }

  /** Cluster addresses never counted or blocked, whatever the policy says (agent only). */
  setProtected(cidrs: Iterable<string>): void {
    this.protectedTrie = new IpTrie(cidrs);
    this.tracker.uncheckAll();
  }

  /**
   * Addresses and CIDRs blocked by other means than the engine's decision (a manual block,
   * one restored without its probe): their probes are answered as from a blocked source.
   */
  setHeld(cidrs: Iterable<string>): void {
    this.held = new IpTrie(cidrs);
    this.tracker.uncheckAll();
  }

  /** Takes back a block the engine decided before (a restart restoring its record). */
  restore(block: BlockRecord): void {
    this.active.set(block.source.text, block);
  }

  /**
   * Lifts the engine's block of `source`, if any, and forgets what the source did, so its
   * next probe is judged afresh (an admin's unblock).
   */
  release(source: string): BlockRecord | undefined {
    const block = this.active.get(source);
    this.active.delete(source);
    const address = block?.source ?? addressOf(source);
    if (address) this.tracker.forget(address);
    return block;
  }

  get trackedSources(): number {
    return this.tracker.size;
  }

  get evictedSources(): number {
    return this.tracker.evicted;
  }

  get blocks(): ReadonlyMap<string, BlockRecord> {
    return this.active;
  }

  /** A copy of what is tracked about a source (for reports and logs), if it is tracked. */
  sourceState(source: Address): SourceState | undefined {
    return this.tracker.state(source);
  }

  decide(probe: Probe): Decision {
    const tracker = this.tracker;
    const found = tracker.find(probe.source);
    // A tracked source already checked against the lists in force is not looked up again
    // (the trie walks cost more than the rest of a probe); the others are looked up by the
    // bytes find() parsed.
    if (found < 0 || !tracker.isChecked(found)) {
      if (this.own.has(probe.source.text)) return { kind: 'ignored', reason: 'own-address' };
      const bytes = probe.source.bytes;
      if (this.ignore.hasBytes(bytes)) return { kind: 'ignored', reason: 'ignore-list' };
      if (this.protectedTrie.size && this.protectedTrie.hasBytes(bytes)) return { kind: 'ignored', reason: 'protected' };
      // Never marked checked: a held source is looked up again until its block is lifted.
      if (this.held.size && this.held.hasBytes(bytes)) return { kind: 'suppressed', distinct: 0, blocked: true };
    }
    const index = tracker.record(probe, found);
    tracker.setChecked(index);
    const distinct = tracker.distinct(index);
    if (this.active.has(probe.source.text)) return { kind: 'suppressed', distinct, blocked: true };
    if (distinct <= this.config.triggerCount) return { kind: 'counted', distinct };
    if (tracker.isTriggered(index)) return { kind: 'suppressed', distinct };

    const action = this.config.actions[probe.protocol];
    if (action === 'alert') {
      tracker.setTriggered(index);
      return { kind: 'alert', reason: 'policy', distinct, ports: this.ports(index) };
    }
    if (this.config.verifiedOnly && !probe.verified) {
      tracker.setTriggered(index);
      return { kind: 'alert', reason: 'unverified', distinct, ports: this.ports(index) };
    }
    // A refused block is retried by the source's next probe, which comes out of the part of
    // the budget kept for returning sources (block-budget.ts); the refusal is answered
    // (logged, counted) once per window, not once per packet.
    // The kernel fast path judged its probes with its own budget: the engine records what
    // it decided, and spends nothing.
    const refusedBefore = tracker.isRateLimited(index);
    const evidence = probe.verified ? 'verified' : refusedBefore ? 'returning' : 'first';
    if (probe.refusedInKernel || (!probe.blockedInKernel && !this.budget.take(probe.time, evidence))) {
      if (refusedBefore) return { kind: 'suppressed', distinct };
      tracker.setRateLimited(index);
      return { kind: 'alert', reason: 'rate-limited', distinct, ports: this.ports(index) };
    }
    tracker.setTriggered(index);
    const block: BlockRecord = {
      source: probe.source,
      action,
      protocol: probe.protocol,
      port: probe.port,
      mode: probe.mode,
      type: probe.type,
      verified: probe.verified,
      since: probe.time,
      until: probe.time + this.config.durationMs,
    };
    this.active.set(block.source.text, block);
    return { kind: 'respond', block, distinct, ports: this.ports(index), types: tracker.types(index) };
  }

  private ports(index: number): string[] {
    return [...this.tracker.probeTimes(index).keys()];
  }

  /** Lifts responses whose time is up and forgets idle sources; returns what was lifted. */
  expire(now: number): BlockRecord[] {
    const lifted: BlockRecord[] = [];
    for (const [source, block] of this.active) {
      if (block.until > now) continue;
      this.active.delete(source);
      this.tracker.forget(block.source); // a returning scanner has to trip the trigger again
      lifted.push(block);
    }
    this.tracker.expire(now);
    return lifted;
  }

  /** Lifts every response (clean shutdown). */
  liftAll(): BlockRecord[] {
    const all = [...this.active.values()];
    this.active.clear();
    return all;
  }
}
