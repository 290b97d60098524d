// Per-source scan state, bounded: at most `capacity` sources (the least recently seen is
// dropped first) and each forgets probes older than the trigger window.
import type { Probe, ProbeType } from '../detect/probe.js';

/** Ports recorded per source for reports; counting beyond it still works (see `distinct`). */
const MAX_RECORDED_PROBES = 256;

export interface SourceState {
  source: string;
  firstSeen: number;
  lastSeen: number;
  /** Distinct probes ("tcp/79") in the window, oldest first, with the time last seen. */
  probes: Map<string, number>;
  types: Set<ProbeType>;
  /** Every probe from the source while tracked, repeats included. */
  total: number;
  /** When this source last triggered a response or alert (0: never). */
  triggeredAt: number;
}

export class SourceTracker {
  private readonly states = new Map<string, SourceState>();
  evicted = 0;

  constructor(
    private capacity: number,
    private windowMs: number,
  ) {}

  get size(): number {
    return this.states.size;
  }

  configure(capacity: number, windowMs: number): void {
    this.capacity = capacity;
    this.windowMs = windowMs;
    this.shrink();
  }

  get(source: string): SourceState | undefined {
    return this.states.get(source);
  }

  /** Records a probe and returns the source's state, with probes outside the window forgotten. */
  record(probe: Probe): SourceState {
    let state = this.states.get(probe.source);
    if (state && probe.time - state.lastSeen > this.windowMs) {
      this.states.delete(probe.source);
      state = undefined;
    }
    if (state) {
      this.states.delete(probe.source); // re-inserted below: Map order is recency order
    } else {
      state = {
        source: probe.source,
        firstSeen: probe.time,
        lastSeen: probe.time,
        probes: new Map(),
        types: new Set(),
        total: 0,
        triggeredAt: 0,
      };
    }
    this.states.set(probe.source, state);
    state.lastSeen = probe.time;
    state.total++;
    state.types.add(probe.type);
    const key = `${probe.protocol}/${probe.port}`;
    state.probes.delete(key);
    state.probes.set(key, probe.time);
    const horizon = probe.time - this.windowMs;
    for (const [k, t] of state.probes) {
      if (t >= horizon && state.probes.size <= MAX_RECORDED_PROBES) break;
      state.probes.delete(k);
    }
    this.shrink();
    return state;
  }

  forget(source: string): void {
    this.states.delete(source);
  }

  /** Drops sources idle for longer than the window. */
  expire(now: number): number {
    let dropped = 0;
    for (const [source, state] of this.states) {
      if (now - state.lastSeen <= this.windowMs) break; // recency order: the rest are newer
      this.states.delete(source);
      dropped++;
    }
    return dropped;
  }

  private shrink(): void {
    while (this.states.size > this.capacity) {
      const oldest = this.states.keys().next().value as string;
      this.states.delete(oldest);
      this.evicted++;
    }
  }
}
