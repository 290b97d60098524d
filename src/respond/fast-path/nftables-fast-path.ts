// The kernel fast path on nftables: its rules in the firewall's table, the nflog reader of
// what they trap, and the synchronisation of its tripwire ports and ignored sources with
// what the sentry watches.
import type { Address, AddressOrNetwork } from '../../net/address.js';
import { formatCidr } from '../../net/ip.js';
import type { Protocol } from '../../policy/types.js';
import { timeoutSeconds } from '../firewall/firewall.js';
import type { FastPath, FastPathSettings, FastPathTargets } from './fast-path.js';
import { KernelDetector, NFLOG_GROUP, PREFIX_BLOCKED, PREFIX_RATE_LIMITED, PREFIX_SPOOFED } from './nflog-reader.js';

/** What the fast path needs of the nftables firewall whose table it lives in. */
export interface NftablesTable {
  table: string;
  /** Runs an nft script. */
  run: (script: string) => Promise<unknown>;
  remove: (target: AddressOrNetwork) => Promise<void>;
  hostSetSize: number;
}

/** The fast path's chains: its own base chain (the hook), then the trap and its outcomes. */
const CHAINS = ['trap_hook', 'trap', 'trap_block', 'trap_refused', 'trap_spoofed'];
/**
 * Only what reaches this host's own sockets, as the raw path sees it: in input, after the
 * destination NAT of prerouting (kube-proxy's NodePorts, the portmap plugin's hostPorts,
 * Docker's published ports: a service's, not a tripwire's) and after IPVS takes its
 * service addresses at input priority 98. The blocked-set drops stay in prerouting.
 */
const HOOK = 'type filter hook input priority 101; policy accept;';

/** Its sets and chains, each created when missing and left as it is when present. */
function fastPathObjects(t: string, hostSetSize: number): string[] {
  const refused = (v: 4 | 6) => `add set ${t} trap_refused${v} { type ipv${v}_addr; flags dynamic, timeout; timeout 60s; size ${hostSetSize}; }`;
  return [
    `add set ${t} tripwire_tcp { type inet_service; flags interval; auto-merge; }`,
    `add set ${t} tripwire_udp { type inet_service; flags interval; auto-merge; }`,
    `add set ${t} ignore4 { type ipv4_addr; flags interval; auto-merge; }`,
    `add set ${t} ignore6 { type ipv6_addr; flags interval; auto-merge; }`,
    refused(4),
    refused(6),
    `add chain ${t} trap_hook { ${HOOK} }`,
    ...CHAINS.slice(1).map((chain) => `add chain ${t} ${chain}`),
  ];
}

/**
 * The kernel fast path (response.kernelFastPath): packets delivered to this host from
 * sources not ignored that hit a tripwire port (TCP without ACK or RST, or UDP) are dropped, whatever else happens to them: a tripwire port answers nothing.
 * A packet whose source would not route back out by the interface it came in on (fib, as
 * rp_filter) is forged: logged as spoofed, never blocked. Otherwise its source goes into
 * the blocked set, up to `perMinute` new blocks (the circuit breaker), and the packet is
 * logged to nflog group NFLOG_GROUP. The budget has two halves (fastPathBudgets): one for sources
 * seen for the first time, one for sources refused within the last minute that come back.
 * A refused source is remembered for a minute; its further packets take the second half
 * or are dropped without touching the log: a flood of one-shot forged sources (a new
 * address with every packet) spends the first half only, and a scanner refused there is
 * blocked at its next packet. Logs of refusals and spoofed packets are capped at 100 a
 * second. The tripwire ports and ignored addresses start empty: sync fills them. The
 * script replaces the chains' rules of an earlier one in the same transaction (a policy
 * edit), keeping the sets and their elements.
 */
export function fastPathRules(table: string, hostSetSize: number, protocols: readonly Protocol[], timeoutMs: number, perMinute: number): string {
    const t = `inet ${table}`;
    const timeout = `${timeoutSeconds(timeoutMs)}s`;
    const log = (prefix: string) => `log group ${NFLOG_GROUP} prefix ${JSON.stringify(prefix)}`;
    const { first, returning } = fastPathBudgets(perMinute);
    const limit = (perMinute: number) => `limit rate ${perMinute}/minute burst ${perMinute} packets`;
    const lines = [
      ...fastPathObjects(t, hostSetSize),
      ...CHAINS.map((chain) => `flush chain ${t} ${chain}`),
      // The port first: ordinary traffic pays one set lookup, not the route lookup below.
      ...(protocols.includes('tcp') ? [`add rule ${t} trap_hook tcp dport @tripwire_tcp tcp flags & (ack | rst) == 0 jump trap`] : []),
      ...(protocols.includes('udp') ? [`add rule ${t} trap_hook udp dport @tripwire_udp jump trap`] : []),
      // Only what the raw path would see: packets to this host, from sources not ignored.
      `add rule ${t} trap fib daddr type != local return`,
      `add rule ${t} trap ip saddr @ignore4 return`,
      `add rule ${t} trap ip6 saddr @ignore6 return`,
      // An IPv4-mapped IPv6 source is never on the wire (RFC 4291 2.5.5.2): forged.
      `add rule ${t} trap ip6 saddr ::ffff:0.0.0.0/96 goto trap_spoofed`,
      `add rule ${t} trap fib saddr . iif oif missing goto trap_spoofed`,
      // Refused within the minute and back: the half of the budget kept for returning sources.
      `add rule ${t} trap ip saddr @trap_refused4 ${limit(returning)} goto trap_block`,
      `add rule ${t} trap ip6 saddr @trap_refused6 ${limit(returning)} goto trap_block`,
      `add rule ${t} trap ip saddr @trap_refused4 counter drop`,
      `add rule ${t} trap ip6 saddr @trap_refused6 counter drop`,
      // The circuit breaker of response.maxBlocksPerMinute for first-seen sources, in the kernel.
      `add rule ${t} trap ${limit(first)} goto trap_block`,
      `add rule ${t} trap goto trap_refused`,
      `add rule ${t} trap_block meta nfproto ipv4 add @blocked4 { ip saddr timeout ${timeout} }`,
      `add rule ${t} trap_block meta nfproto ipv6 add @blocked6 { ip6 saddr timeout ${timeout} }`,
      `add rule ${t} trap_block ${log(PREFIX_BLOCKED)} counter drop`,
      `add rule ${t} trap_refused meta nfproto ipv4 add @trap_refused4 { ip saddr }`,
      `add rule ${t} trap_refused meta nfproto ipv6 add @trap_refused6 { ip6 saddr }`,
      `add rule ${t} trap_refused limit rate 100/second ${log(PREFIX_RATE_LIMITED)}`,
      `add rule ${t} trap_refused counter drop`,
      `add rule ${t} trap_spoofed limit rate 100/second ${log(PREFIX_SPOOFED)}`,
      `add rule ${t} trap_spoofed counter drop`,
      '',
    ];
    return lines.join('\n');
}

/** Removes the fast path's chains and sets in one transaction (the blocked sets are the firewall's). */
export function fastPathRemoval(table: string, hostSetSize: number): string {
  const t = `inet ${table}`;
  const sets = ['tripwire_tcp', 'tripwire_udp', 'ignore4', 'ignore6', 'trap_refused4', 'trap_refused6'];
  return [
    ...fastPathObjects(t, hostSetSize),
    ...CHAINS.map((chain) => `flush chain ${t} ${chain}`),
    ...CHAINS.map((chain) => `delete chain ${t} ${chain}`),
    ...sets.map((set) => `delete set ${t} ${set}`),
    '',
  ].join('\n');
}

export class NftablesFastPath implements FastPath {
  protocols: readonly Protocol[];
  private reader: KernelDetector | null = null;
  /** The targets last applied (as text), and the sync under way with the latest targets asked for. */
  private applied = '';
  private running: Promise<void> | null = null;
  private wanted: FastPathTargets | null = null;

  constructor(
    private readonly nft: NftablesTable,
    private settings: FastPathSettings,
  ) {
    this.protocols = protocolsOf(settings);
  }

  async start(): Promise<void> {
    await this.install();
    const settings = this.settings;
    // The callbacks of the settings in force, not of those at start.
    const reader = new KernelDetector({
      modes: settings.modes,
      onProbe: (p) => this.settings.onProbe(p),
      onSpoofed: (p) => this.settings.onSpoofed(p),
      onLoss: () => this.settings.onLoss(),
    });
    reader.start();
    this.reader = reader;
  }

  async reconfigure(settings: FastPathSettings): Promise<void> {
    this.settings = settings;
    this.protocols = protocolsOf(settings);
    await this.install();
    if (this.reader) this.reader.modes = settings.modes;
    // A protocol that joined has an empty tripwire set: the next sync fills it.
    this.applied = '';
  }

  private install(): Promise<unknown> {
    const { table, hostSetSize } = this.nft;
    return this.nft.run(fastPathRules(table, hostSetSize, this.protocols, this.settings.timeoutMs, this.settings.perMinute));
  }

  stop(): void {
    this.reader?.stop();
    this.reader = null;
  }

  async remove(): Promise<void> {
    this.stop();
    await this.running?.catch(() => undefined);
    await this.nft.run(fastPathRemoval(this.nft.table, this.nft.hostSetSize));
    this.applied = '';
  }

  async unblock(source: Address): Promise<void> {
    await this.nft.remove(source);
  }

  sync(targets: FastPathTargets): Promise<void> {
    this.wanted = targets;
    // One at a time: housekeeping comes every second, nft can be slower than that.
    this.running ??= this.drain().finally(() => (this.running = null));
    return this.running;
  }

  private async drain(): Promise<void> {
    while (this.wanted) {
      const targets = this.wanted;
      this.wanted = null;
      await this.apply(targets);
    }
  }

  private async apply(targets: FastPathTargets): Promise<void> {
    const ignored: Record<4 | 6, string[]> = { 4: [], 6: [] };
    const seen = new Set<string>();
    for (const cidr of targets.ignored) {
      const text = formatCidr(cidr);
      if (seen.has(text)) continue;
      seen.add(text);
      ignored[cidr.family].push(text);
    }
    const ports = this.protocols.map((protocol) => ({ protocol, ranges: portRanges(targets.ports[protocol] ?? new Uint8Array(65536)) }));
    const key = JSON.stringify([ignored, ports]);
    if (key === this.applied) return;
    const t = `inet ${this.nft.table}`;
    // One transaction each: the packet path sees the old elements or the new ones, never neither.
    const replace = (set: string, elements: string[]) =>
      this.nft.run(`flush set ${t} ${set}\n${elements.length ? `add element ${t} ${set} { ${elements.join(', ')} }\n` : ''}`);
    await replace('ignore4', ignored[4]);
    await replace('ignore6', ignored[6]);
    for (const { protocol, ranges } of ports) await replace(`tripwire_${protocol}`, ranges);
    this.applied = key;
  }
}

const protocolsOf = (settings: FastPathSettings): Protocol[] => (['tcp', 'udp'] as const).filter((p) => settings.modes[p]);

/**
 * The fast path's halves of response.maxBlocksPerMinute (no handshake proves anything
 * there): first-seen sources, and sources back after a refusal; each at least 1.
 */
export function fastPathBudgets(perMinute: number): { first: number; returning: number } {
  const returning = Math.floor(perMinute / 2);
  return { first: Math.max(1, perMinute - returning), returning: Math.max(1, returning) };
}

/** Ports marked 1 (indexed by port number) as nft elements: "79", "6000-6063". */
export function portRanges(ports: Uint8Array): string[] {
  const ranges: string[] = [];
  for (let port = 1; port < 65536; port++) {
    if (!ports[port]) continue;
    let end = port;
    while (end + 1 < 65536 && ports[end + 1]) end++;
    ranges.push(end === port ? String(port) : `${port}-${end}`);
    port = end;
  }
  return ranges;
}
