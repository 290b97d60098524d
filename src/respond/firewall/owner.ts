// Who owns which kernel objects (pure). The standalone sentry and the agent of each Helm
// release get names of their own (table, sets, chain), so none ever sets up, reconciles or
// removes another's; each marks what it creates with an owner comment, and refuses to
// take over objects of its names that another owner marked.
import { createHash } from 'node:crypto';

export type FirewallOwner =
  /** The host service (`kube-portsentry run`), known by its files directory. */
  | { kind: 'standalone'; stateDir: string }
  /** A node agent of one installation (the chart passes the Helm release name). */
  | { kind: 'agent'; instance: string };

export interface FirewallNames {
  /** nftables table, family inet. */
  table: string;
  /** ipset names are `${setPrefix}-v4` and `${setPrefix}-v6`. */
  setPrefix: string;
  /** iptables chain in the raw table. */
  chain: string;
  /** Who the objects belong to: the nftables table's comment and the iptables jump's. */
  comment: string;
  /** The metric of the owner's blackhole routes (route.ts), which tells them apart. */
  routeMetric: number;
}

const STANDALONE_METRIC = 157;

/** The agent's instance when none is given (the chart always passes its release name). */
export const DEFAULT_INSTANCE = 'default';

/** A Helm release name: DNS labels joined by dots, at most 53 characters. */
const INSTANCE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Why `name` cannot name an agent instance, or null when it can. */
export function instanceProblem(name: string): string | null {
  return INSTANCE.test(name) && name.length <= 53
    ? null
    : `instance ${JSON.stringify(name)} must be a Helm release name (lower-case letters, digits, "-" and ".", at most 53)`;
}

/** ipset names hold 31 characters and iptables chains 28: a long instance is cut and hashed. */
const SHORT_MAX = 24;
function short(instance: string): string {
  if (instance.length <= SHORT_MAX) return instance;
  return `${instance.slice(0, 15)}-${createHash('sha256').update(instance).digest('hex').slice(0, 8)}`;
}

/** nftables comments hold 128 bytes; a longer one is cut where both owners would cut it. */
const cut = (text: string): string => (Buffer.byteLength(text) <= 120 ? text : `${Buffer.from(text).subarray(0, 111).toString()}#${createHash('sha256').update(text).digest('hex').slice(0, 8)}`);

export function firewallNames(owner: FirewallOwner): FirewallNames {
  if (owner.kind === 'standalone')
    return {
      table: 'kube_portsentry',
      setPrefix: 'kube-portsentry',
      chain: 'KUBE-PORTSENTRY',
      comment: cut(`kube-portsentry standalone ${owner.stateDir}`),
      routeMetric: STANDALONE_METRIC,
    };
  const problem = instanceProblem(owner.instance);
  if (problem) throw new Error(problem);
  const s = short(owner.instance);
  return {
    table: `kube_portsentry_agent_${owner.instance.replaceAll('-', '_')}`,
    setPrefix: `kps-${s}`,
    chain: `KPS-${s}`,
    comment: cut(`kube-portsentry agent ${owner.instance}`),
    // An agent's own metric, away from the standalone's (and, but for a hash collision, another release's).
    routeMetric: STANDALONE_METRIC + 1 + (createHash('sha256').update(owner.instance).digest().readUInt32BE(0) % 1_000_000),
  };
}

export class OwnershipError extends Error {
  override name = 'OwnershipError';
}

/**
 * Checks that objects of our names found in the kernel are ours: `found` is the owner
 * comment they carry (undefined: none, as objects made before owners were marked).
 */
export function checkOwner(what: string, found: string | undefined, ours: string): void {
  if (found === undefined || found === ours) return;
  const standalone = /^kube-portsentry standalone (.+)$/.exec(found);
  const agent = /^kube-portsentry agent (\S+)$/.exec(found);
  const remedy = standalone
    ? `stop that sentry, or remove its state with: kube-portsentry flush --state-dir ${standalone[1]}`
    : agent
      ? `remove that agent, then its state with: kube-portsentry cleanup --instance ${agent[1]}`
      : 'stop that owner and remove its state';
  throw new OwnershipError(`${what} belongs to "${found}", not to "${ours}": refusing to take it over or remove it (${remedy})`);
}
