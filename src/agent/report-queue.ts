// Probes waiting to be reported, aggregated per source so a flood costs one entry per
// source, not per packet. Bounded: when full, the source reported least recently is
// dropped first (and counted). Pure: no timers, no I/O.
import type { ReportedProbe, SourceReport } from '../k8s/report.js';
import { MAX_PROBES_PER_SOURCE, MAX_SOURCES_PER_REPORT } from '../k8s/report.js';

interface Pending {
  source: string;
  probes: Map<string, ReportedProbe>;
  count: number;
  firstSeen: number;
  lastSeen: number;
  verified: boolean;
  blocked: boolean;
}

export class ReportQueue {
  private readonly pending = new Map<string, Pending>();
  dropped = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.pending.size;
  }

  add(source: string, probe: ReportedProbe, verified: boolean, blocked: boolean): void {
    let p = this.pending.get(source);
    if (!p) {
      if (this.pending.size >= this.capacity) {
        this.pending.delete(this.pending.keys().next().value as string);
        this.dropped++;
      }
      p = { source, probes: new Map(), count: 0, firstSeen: probe.time, lastSeen: probe.time, verified: false, blocked: false };
      this.pending.set(source, p);
    }
    const key = `${probe.protocol}/${probe.port}`;
    const seen = p.probes.get(key);
    if (seen) seen.time = probe.time;
    else if (p.probes.size < MAX_PROBES_PER_SOURCE) p.probes.set(key, { ...probe });
    p.count++;
    p.lastSeen = Math.max(p.lastSeen, probe.time);
    p.verified ||= verified;
    p.blocked ||= blocked;
  }

  /**
   * Takes sources, oldest first, while their JSON (as a list) stays within `maxBytes` and
   * MAX_SOURCES_PER_REPORT; always at least one, so a lone large source still goes out.
   */
  take(maxBytes: number): SourceReport[] {
    const out: SourceReport[] = [];
    let bytes = 2; // []
    for (const [source, p] of this.pending) {
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
      out.push(r);
    }
    return out;
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
