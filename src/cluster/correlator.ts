// Cluster-wide trigger: the distinct (node, protocol/port) pairs one source touched within
// the policy's window. A slow scan that touches one port on each of many nodes passes it
// even when no single node's trigger is met. Pure: fed reports, returns what happened.
// Bounded: sources (least recently seen forgotten first) and touches per source (enough
// for the largest trigger); a report costs in proportion to its own probes.
import type { SourceReport } from './report.js';

export interface SourceActivity {
  source: string;
  policy: string;
  /** (node, protocol, port) as a number -> last seen (epoch ms), least recently touched first. */
  touches: Map<number, number>;
  /** Distinct protocol/port pairs as numbers (UDP + 65536): see portNames. */
  ports: Set<number>;
  types: Set<string>;
  nodes: Set<string>;
  probes: number;
  firstSeen: number;
  lastSeen: number;
  /** Nodes that saw a probe from it complete a handshake. */
  verifiedNodes: Set<string>;
  /** Some agent already blocked it on its node. */
  blockedLocally: boolean;
  /** Its cluster-wide block was refused by the block budget (it comes back as a returning source). */
  refused: boolean;
}

export interface TriggerSettings {
  count: number;
  windowMs: number;
}

/** Distinct ports kept per source for status; counting beyond them still works. */
const MAX_PORTS = 1024;
/** Touches kept per source: one more than the largest trigger.count (255) passes any trigger. */
export const MAX_TOUCHES = 256;

/** A source's ports as "tcp/79", "udp/53". */
export function portNames(a: SourceActivity): string[] {
  return [...a.ports].map((p) => (p >= 65536 ? `udp/${p - 65536}` : `tcp/${p}`));
}

/** The distinct nodes among a source's touches in the window. */
export function nodesTouching(a: SourceActivity): number {
  const nodes = new Set<number>();
  for (const key of a.touches.keys()) nodes.add(Math.floor(key / TOUCH_NODE_STRIDE));
  return nodes.size;
}

/** A touch key is nodeId * TOUCH_NODE_STRIDE + port (UDP ports + 65536). */
const TOUCH_NODE_STRIDE = 131072;

export class Correlator {
  private readonly sources = new Map<string, SourceActivity>();
  /** A small number per node name, for the touch keys. */
  private readonly nodeIds = new Map<string, number>();
  evicted = 0;

  constructor(private readonly maxSources: number) {}

  get size(): number {
    return this.sources.size;
  }

  get(source: string): SourceActivity | undefined {
    return this.sources.get(source);
  }

  /**
   * Adds one node's report of a source and returns its activity and whether the cluster-wide
   * trigger is now passed.
   */
  add(node: string, policy: string, r: SourceReport, trigger: TriggerSettings, now: number): { activity: SourceActivity; triggered: boolean } {
    let a = this.sources.get(r.source);
    if (a && now - a.lastSeen > trigger.windowMs) {
      this.sources.delete(r.source);
      a = undefined;
    }
    if (!a) {
      a = {
        source: r.source,
        policy,
        touches: new Map(),
        ports: new Set(),
        types: new Set(),
        nodes: new Set(),
        probes: 0,
        firstSeen: r.firstSeen,
        lastSeen: r.lastSeen,
        verifiedNodes: new Set(),
        blockedLocally: false,
        refused: false,
      };
      this.sources.set(r.source, a);
      this.shrink();
    } else {
      // Keep Map order as recency, for eviction.
      this.sources.delete(r.source);
      this.sources.set(r.source, a);
    }
    a.policy = policy;
    a.nodes.add(node);
    a.probes += r.count;
    a.firstSeen = Math.min(a.firstSeen, r.firstSeen);
    a.lastSeen = Math.max(a.lastSeen, r.lastSeen, now);
    if (r.verified) a.verifiedNodes.add(node);
    a.blockedLocally ||= r.blocked;
    let nodeId = this.nodeIds.get(node);
    if (nodeId === undefined) this.nodeIds.set(node, (nodeId = this.nodeIds.size));
    for (const p of r.probes) {
      const port = (p.protocol === 'udp' ? 65536 : 0) + p.port;
      const key = nodeId * TOUCH_NODE_STRIDE + port;
      const seen = a.touches.get(key);
      a.touches.delete(key); // re-set below: Map order stays least recently touched first
      a.touches.set(key, seen === undefined ? p.time : Math.max(seen, p.time));
      if (a.touches.size > MAX_TOUCHES) a.touches.delete(a.touches.keys().next().value as number);
      if (a.ports.size < MAX_PORTS) a.ports.add(port);
      a.types.add(p.type);
    }
    // Expired touches are at the front: stop at the first one still in the window.
    for (const [key, time] of a.touches) {
      if (now - time <= trigger.windowMs) break;
      a.touches.delete(key);
    }
    return { activity: a, triggered: a.touches.size > trigger.count };
  }

  forget(source: string): void {
    this.sources.delete(source);
  }

  /** Forgets sources idle longer than `windowMs`. */
  expire(now: number, windowMs: number): void {
    for (const [source, a] of this.sources) if (now - a.lastSeen > windowMs) this.sources.delete(source);
  }

  private shrink(): void {
    while (this.sources.size > this.maxSources) {
      const oldest = this.sources.keys().next().value as string;
      this.sources.delete(oldest);
      this.evicted++;
    }
  }
}
