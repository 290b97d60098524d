// What a starting sentry does with the blocks it finds (pure): the record says what was
// blocked and until when; the kernel, the routes and hosts.deny say what is in place.
// Blocks still in force stay (and are put back where missing), expired ones are lifted,
// and entries of the sentry's own that the record does not hold are removed, except the
// kernel fast path's: the kernel adds those by itself, even while the sentry is down.
import { isNetwork, type AddressOrNetwork } from '../net/address.js';
import type { BlockEntry } from './entry.js';

/** An entry of the sentry's own kernel sets, parsed where the kernel listed it. */
export interface KernelEntry {
  target: AddressOrNetwork;
  expiresInSeconds?: number;
  /** Who added it: "detected" or "manual" for the sentry; none for the kernel fast path's rules. */
  tag?: string;
}

/** What is in place now, of the sentry's own. */
export interface HostState {
  kernel: KernelEntry[];
  /** Prefixes of the sentry's blackhole routes. */
  routes: AddressOrNetwork[];
  /** The sentry's lines in hosts.deny. */
  hostsDeny: string[];
}

/** What the policy asks of a block. */
export interface HostActions {
  firewall: boolean;
  /** The built-in blackhole route (a route command cannot be reconciled). */
  routes: boolean;
  /** The hosts.deny line of a block (null when it can have none); null when hosts.deny is off. */
  hostsDenyLine: ((entry: BlockEntry) => string | null) | null;
}

export interface ReconcilePlan {
  /** The record from now on: blocks still in force, and the adopted ones. */
  keep: BlockEntry[];
  /** Blocks whose time ran out (during the downtime, or since). */
  lifted: BlockEntry[];
  /** Blocks the kernel fast path made that the record missed. */
  adopted: BlockEntry[];
  /** Blocks to put in the kernel (with the time they have left), and entries to take out. */
  kernel: { add: { entry: BlockEntry; timeoutMs: number }[]; remove: KernelEntry[] };
  /** Blocks whose route is missing, and routes to take out. */
  routes: { add: BlockEntry[]; remove: AddressOrNetwork[] };
  /** Blocks whose hosts.deny line is missing, and lines to take out. */
  hostsDeny: { add: BlockEntry[]; remove: string[] };
}

export const ADOPTED_REASON = 'blocked by the kernel fast path while the sentry did not record it';

export function reconcile(now: number, record: readonly BlockEntry[], state: HostState, actions: HostActions): ReconcilePlan {
  const keep = record.filter((e) => e.until === null || e.until > now);
  const lifted = record.filter((e) => e.until !== null && e.until <= now);
  const kept = new Set(keep.map((e) => e.target.text));

  const adopted: BlockEntry[] = [];
  const remove: KernelEntry[] = [];
  const inKernel = new Set<string>();
  for (const k of state.kernel) {
    const address = k.target.text;
    inKernel.add(address);
    if (kept.has(address)) continue;
    const fastPath = k.tag === undefined && !isNetwork(k.target) && k.expiresInSeconds !== undefined && !lifted.some((e) => e.target.text === address);
    if (fastPath) {
      adopted.push({ target: k.target, origin: 'detected', reason: ADOPTED_REASON, ports: [], types: [], since: now, until: now + k.expiresInSeconds! * 1000 });
      kept.add(address);
    } else remove.push(k);
  }
  const inForce = [...keep, ...adopted];
  const add = actions.firewall
    ? keep.filter((e) => !inKernel.has(e.target.text)).map((entry) => ({ entry, timeoutMs: entry.until === null ? Infinity : entry.until - now }))
    : [];

  const routesWanted = new Set(actions.routes ? inForce.map((e) => e.target.text) : []);
  const routesThere = new Map(state.routes.map((r) => [r.text, r]));
  const lineOf = actions.hostsDenyLine;
  const lines = new Map<BlockEntry, string>();
  if (lineOf)
    for (const e of inForce) {
      const line = lineOf(e);
      if (line !== null) lines.set(e, line);
    }
  const linesWanted = new Set(lines.values());
  const linesThere = new Set(state.hostsDeny);
  return {
    keep: inForce,
    lifted,
    adopted,
    kernel: { add, remove },
    routes: { add: inForce.filter((e) => routesWanted.has(e.target.text) && !routesThere.has(e.target.text)), remove: [...routesThere.values()].filter((r) => !routesWanted.has(r.text)) },
    hostsDeny: { add: [...lines].filter(([, l]) => !linesThere.has(l)).map(([e]) => e), remove: [...linesThere].filter((l) => !linesWanted.has(l)) },
  };
}
