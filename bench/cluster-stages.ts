// Where the time from a probe on node 1 to node 3's set goes, stage by stage, from the
// debug log lines the agents and the operator write with CLOCK_MONOTONIC stamps (the clock
// the probe sender and the set watchers use): the detecting agent's "report delivered"
// (posted), the operator's "block timings" (received, token settled, create sent and
// answered), node 3's agent's "BlockedHost event" (the watch event), and node 3's set.
import type { LogLine } from '../support/sentry-process.js';

export const STAGES = ['detect+queue', 'report', 'token', 'judge', 'create', 'watch event', 'netlink'] as const;
export type Stage = (typeof STAGES)[number];

export const STAGE_MEANING: Record<Stage, string> = {
  'detect+queue': 'probe sent to its report posted (node 1: detection, queue, wait to send)',
  report: 'report posted to its arrival at the operator',
  token: 'arrival to the token settled (TokenReview cache)',
  judge: 'token settled to the BlockedHost create sent',
  create: 'create sent to the API server answer',
  'watch event': "API server answer to node 3's watch event (negative: the event came first)",
  netlink: "node 3's watch event to its set's addition (netlink)",
};

const ns = (v: unknown): bigint | undefined => (typeof v === 'string' && /^\d+$/.test(v) ? BigInt(v) : undefined);

/**
 * Each stage's milliseconds for the sources of `sent` (source -> probe send time) that every
 * stamp was found for; `node3Set` is node 3's set addition by source.
 */
export function stageTimes(
  sent: ReadonlyMap<string, bigint>,
  node3Set: ReadonlyMap<string, bigint>,
  logs: { node1: readonly LogLine[]; operator: readonly LogLine[]; node3: readonly LogLine[] },
): Record<Stage, number[]> & { slowest: Record<string, number>[] } {
  const posted = new Map<string, bigint>();
  for (const l of logs.node1)
    if (l.msg === 'report delivered' && Array.isArray(l.sources))
      for (const s of l.sources as string[]) if (sent.has(s) && !posted.has(s)) posted.set(s, ns(l.postedAtNs)!);
  const operator = new Map<string, LogLine>();
  for (const l of logs.operator) if (l.msg === 'block timings' && sent.has(l.source as string)) operator.set(l.source as string, l);
  const event = new Map<string, bigint>();
  for (const l of logs.node3) if (l.msg === 'BlockedHost event' && sent.has(l.address as string) && !event.has(l.address as string)) event.set(l.address as string, ns(l.atNs)!);
  const out = Object.fromEntries(STAGES.map((s) => [s, [] as number[]])) as Record<Stage, number[]>;
  const each: Record<string, number>[] = [];
  const ms = (from: bigint, to: bigint) => Number(to - from) / 1e6;
  for (const [source, t0] of sent) {
    const op = operator.get(source);
    const [p, e, set] = [posted.get(source), event.get(source), node3Set.get(source)];
    const [received, authenticated, createAt, created] = [op?.receivedAtNs, op?.authenticatedAtNs, op?.createAtNs, op?.createdAtNs].map(ns);
    if (p === undefined || e === undefined || set === undefined || !received || !authenticated || !createAt || !created) continue;
    const stamps = [t0, p, received, authenticated, createAt, created, e, set];
    const one: Record<string, number> = { total: ms(t0, set) };
    STAGES.forEach((stage, i) => out[stage].push((one[stage] = ms(stamps[i]!, stamps[i + 1]!))));
    each.push(one);
  }
  for (const list of Object.values(out)) list.sort((a, b) => a - b);
  // The three slowest probes, stage by stage: what a p99 or a maximum is made of.
  return { ...out, slowest: each.sort((a, b) => b.total! - a.total!).slice(0, 3) };
}
