// One source's probes as an agent reports them (tcp SYNs at `time`), for the correlator's tests and benchmark.
import type { SourceReport } from '../src/cluster/report.js';

export const sourceReport = (source: string, ports: number[], time = 1000): SourceReport => ({
  source,
  probes: ports.map((port) => ({ protocol: 'tcp' as const, port, type: 'syn', time })),
  count: ports.length,
  firstSeen: time,
  lastSeen: time,
  verified: false,
  blocked: false,
});
