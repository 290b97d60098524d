// Port lists as users write them: numbers and "from-to" ranges, in YAML or classic files.
import type { PortRange, PortSpec } from './types.js';

/** Parses one entry; returns the range or a message saying what is wrong. */
export function parsePortSpec(spec: PortSpec): PortRange | string {
  if (typeof spec === 'number') {
    if (!Number.isInteger(spec) || spec < 1 || spec > 65535) return `port ${spec} is not between 1 and 65535`;
    return { from: spec, to: spec };
  }
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(spec);
  if (!m) return `${JSON.stringify(spec)} is not a port or a range like "6000-6063"`;
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  for (const p of [from, to]) if (p < 1 || p > 65535) return `port ${p} is not between 1 and 65535`;
  if (to < from) return `range ${JSON.stringify(spec)} is reversed (${from} > ${to})`;
  return { from, to };
}

/** The sorted, distinct ports of a validated list. */
export function expandPorts(specs: readonly PortSpec[]): number[] {
  const set = new Set<number>();
  for (const spec of specs) {
    const r = parsePortSpec(spec);
    if (typeof r === 'string') throw new Error(r);
    for (let p = r.from; p <= r.to; p++) set.add(p);
  }
  return [...set].sort((a, b) => a - b);
}
