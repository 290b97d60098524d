// Probes waiting to be reported, aggregated per source so a flood costs one entry per
// source, not per packet. Bounded: when full, a source is dropped (and counted), the one
// queued longest among those that showed least: a single unverified probe, not blocked
// here (what a flood of one-shot forged sources looks like); only when there are none, the
// one queued longest of all. Sources that showed more (a handshake, a second probe, a
// block on this node) are sent first. Pure: no timers, no I/O; a listener is told of each
// source the moment it stops being weak.
import type { ReportedProbe, SourceReport } from '../cluster/report.js';
import { MAX_PROBES_PER_SOURCE, MAX_SOURCES_PER_REPORT } from '../cluster/report.js';

interface Pending {
  source: string;
  probes: Map<string, ReportedProbe>;
  count: number;
  firstSeen: number;
  lastSeen: number;
  verified: boolean;
  blocked: boolean;
}

/** Nothing more than one forged packet shows. */
const weak = (p: Pending): boolean => p.count <= 1 && !p.verified && !p.blocked;

export class ReportQueue {
  private readonly pending = new Map<string, Pending>();
  /** The weak sources of `pending`, in the order they were queued. */
  private readonly weak = new Set<string>();
  dropped = 0;
  /** Told when a queued source stops being weak (the reporter sends its first report at once). */
  private onNewSource: (() => void) | undefined;

  constructor(private readonly capacity: number) {}

  /** Whoever sends the queue is told of each source that stops being weak (or is not weak from its first probe). */
  listen(onNewSource: () => void): void {
    this.onNewSource = onNewSource;
  }

  get size(): number {
    return this.pending.size;
  }

  add(source: string, probe: ReportedProbe, verified: boolean, blocked: boolean): void {
    let p = this.pending.get(source);
    if (!p) {
      if (this.pending.size >= this.capacity) {
        const victim = (this.weak.size ? this.weak : this.pending).keys().next().value as string;
        this.pending.delete(victim);
        this.weak.delete(victim);
        this.dropped++;
      }
      p = { source, probes: new Map(), count: 0, firstSeen: probe.time, lastSeen: probe.time, verified: false, blocked: false };
      this.pending.set(source, p);
      this.weak.add(source);
    }
    const key = `${probe.protocol}/${probe.port}`;
    const seen = p.probes.get(key);
    if (seen) seen.time = probe.time;
    else if (p.probes.size < MAX_PROBES_PER_SOURCE) p.probes.set(key, { ...probe });
    p.count++;
    p.lastSeen = Math.max(p.lastSeen, probe.time);
    p.verified ||= verified;
    p.blocked ||= blocked;
    // A source that now shows more than one forged packet could: told once. A flood of
    // one-shot forged sources, which the operator cannot act on alone, waits for the interval.
    if (!weak(p) && this.weak.delete(source)) this.onNewSource?.();
  }

  /**
   * Takes sources, oldest first, while their JSON (as a list) stays within `maxBytes` and
   * MAX_SOURCES_PER_REPORT; always at least one, so a lone large source still goes out.
   */
  take(maxBytes: number): SourceReport[] {
    const out: SourceReport[] = [];
    let bytes = 2; // []
    const strongFirst = this.weak.size === 0 || this.weak.size === this.pending.size ? this.pending.keys() : [...this.strong(), ...this.weak];
    for (const source of strongFirst) {
      const p = this.pending.get(source)!;
      if (out.length >= MAX_SOURCES_PER_REPORT) break;
      const r: SourceReport = {
        source,
        probes: [...p.probes.values()],
        count: p.count,
        firstSeen: p.firstSeen,
        lastSeen: p.lastSeen,
        verified: p.verified,
        blocked: p.blocked,
      };
      const size = Buffer.byteLength(JSON.stringify(r)) + (out.length ? 1 : 0);
      if (out.length && bytes + size > maxBytes) break;
      bytes += size;
      this.pending.delete(source);
      this.weak.delete(source);
      out.push(r);
    }
    return out;
  }

  /** The sources that showed more than one forged packet would, in the order they were queued. */
  private *strong(): Iterable<string> {
    for (const source of this.pending.keys()) if (!this.weak.has(source)) yield source;
  }

  /** Puts back a batch that could not be sent, merged with anything newer. */
  putBack(batch: SourceReport[]): void {
    for (const r of batch) {
      for (const probe of r.probes) this.add(r.source, probe, r.verified, r.blocked);
      const p = this.pending.get(r.source);
      if (p) {
        p.count += Math.max(0, r.count - r.probes.length);
        p.firstSeen = Math.min(p.firstSeen, r.firstSeen);
      }
    }
  }
}
