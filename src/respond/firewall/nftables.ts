// nftables backend: a table of our own with sets (with timeouts) and a chain in the
// prerouting hook at raw priority. Nothing outside the table is touched. Setup and
// teardown run `nft`; adding and removing one address, the per-block work, is one netlink
// batch (see src/net/netlink.ts for why); many addresses at once (a restart rebuilding the
// set) go up to a thousand per batch; listing the sets is a netlink dump
// (nft-set-elements.ts reads it).
//
// Single addresses go to hash sets (blocked4/blocked6): the kernel inserts into an
// interval set by walking it, which measured 0.7 ms per insert at 30,000 entries and
// growing, and a rule can add to a hash set from the packet path. CIDRs go to interval
// sets (blockednet4/blockednet6).
import { endianness } from 'node:os';
import type { AddressOrNetwork } from '../../net/address.js';
import type { Family } from '../../net/ip.js';
import { ProgramError, runProgram } from '../run-program.js';
import { ADD_MANY_MAX, LISTING, checkTag, timeoutSeconds, type AntiSpoofing, type Firewall, type FirewallAdd, type FirewallEntry, type SetupOptions } from './firewall.js';
import { MAX_ENTRY_LIFETIME_MS } from './block-set.js';
import {
  NFTA_DATA_VALUE,
  NFTA_LIST_ELEM,
  NFTA_SET_ELEM_FLAGS,
  NFTA_SET_ELEM_KEY,
  NFTA_SET_ELEM_LIST_ELEMENTS,
  NFTA_SET_ELEM_TIMEOUT,
  NFTA_SET_ELEM_USERDATA,
  NFT_SET_ELEM_INTERVAL_END,
  OPEN_INTERVAL_USER_DATA,
  commentUserData,
  elementsIn,
  elementsOf,
  hostEntry,
  intervalElement,
  networkEntries,
  type IntervalElement,
} from './nft-set-elements.js';
import { checkOwner } from './owner.js';
import type { FastPath, FastPathSettings } from '../fast-path/fast-path.js';
import { NftablesFastPath } from '../fast-path/nftables-fast-path.js';
import {
  NETLINK_NETFILTER,
  NLM_F_ACK,
  NLM_F_CREATE,
  NetlinkError,
  NetlinkSocket,
  attr,
  cstring,
  errnoName,
  nest,
  nfgenmsg,
  u32be,
  u64be,
  type Part,
} from '../../net/netlink.js';

export const NFT_TABLE = 'kube_portsentry';
/** The sets that hold blocks: kept when a restart sets the table up again. */
const BLOCK_SETS = ['blocked4', 'blocked6', 'blockednet4', 'blockednet6'];
const hostSet = (family: Family): string => (family === 4 ? 'blocked4' : 'blocked6');
const netSet = (family: Family): string => (family === 4 ? 'blockednet4' : 'blockednet6');
/** Like ipset's maxelem: a hash set needs a bound; a flood of forged sources hits the rate limit first. */
const HOST_SET_SIZE = 1048576;

// linux/netfilter/nfnetlink.h and nf_tables.h
const NFNL_SUBSYS_NFTABLES = 10;
const NFNL_MSG_BATCH_BEGIN = 0x10;
const NFNL_MSG_BATCH_END = 0x11;
const NFT_MSG_NEWSETELEM = 12;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_DELSETELEM = 14;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFPROTO_INET = 1;
const LE = endianness() === 'LE';
/** Listings of an interval set taken before giving up on one that changes under every one. */
const LISTING_ATTEMPTS = 3;
const ENOENT = 2;

/** A set-element message: its type (new or delete), the set, and the list elements. */
interface SetMessage {
  type: number;
  set: string;
  elements: Buffer[];
}

/** An attribute's length is 16 bits: room for the elements of one message, headers aside. */
const MAX_ELEMENTS_BYTES = 60_000;

/** The set an addition goes to and its list elements (an interval's start and end). */
function setElements(a: FirewallAdd): { set: string; elements: Buffer[] } {
  const { start, end } = elementsOf(a.target);
  const first = [key(start)];
  if (Number.isFinite(a.timeoutMs)) first.push(attr(NFTA_SET_ELEM_TIMEOUT, u64be(timeoutSeconds(a.timeoutMs) * 1000)));
  const udata = [...(checkTag(a.tag) ? [commentUserData(a.tag!)] : []), ...(end === null ? [OPEN_INTERVAL_USER_DATA] : [])];
  if (udata.length) first.push(attr(NFTA_SET_ELEM_USERDATA, Buffer.concat(udata)));
  return { set: end === undefined ? hostSet(a.target.family) : netSet(a.target.family), elements: [nest(NFTA_LIST_ELEM, ...first), ...endElement(end)] };
}

export class NftablesFirewall implements Firewall {
  readonly name = 'nftables';
  readonly antiSpoofing: AntiSpoofing = {
    enableAntiSpoofing: () => this.enableAntiSpoofing(),
    // An index, once resolved, stays with the interface it named: the caller sets them again when interfaces change.
    // Each with the longest timeout any agent entry has: left behind (an uninstall), the rule
    // matches nothing once they expire; the agent gives them again well before.
    setUplinks: (interfaces) =>
      this.replaceElements('uplinks', interfaces.map((i) => `${JSON.stringify(checkInterfaceName(i))} timeout ${timeoutSeconds(MAX_ENTRY_LIFETIME_MS)}s`)),
    spoofedDropped: () => this.spoofedDropped(),
  };

  private socket: NetlinkSocket | null = null;

  constructor(
    private readonly nft = 'nft',
    private readonly table = NFT_TABLE,
    /** The owner's comment on the table (owner.ts): a table marked by another owner is never taken over or removed. */
    private readonly owner?: { comment: string },
  ) {}

  private run(script: string): Promise<unknown> {
    return runProgram([this.nft, '-f', '-'], { input: script });
  }

  /** The table as it is in the kernel (null: none): its owner comment, chains and sets, without set elements. */
  private async existing(): Promise<{ comment?: string; chains: string[]; sets: string[] } | null> {
    let text: string;
    try {
      text = (await runProgram([this.nft, '-t', 'list', 'table', 'inet', this.table])).stdout;
    } catch (err) {
      if (err instanceof ProgramError && /No such file or directory/.test(err.stderr)) return null;
      throw err;
    }
    const comment = /^\tcomment "(.*)"$/m.exec(text)?.[1];
    const names = (kind: string) => [...text.matchAll(new RegExp(`^\\t${kind} (\\S+) \\{`, 'gm'))].map((m) => m[1]!);
    return { ...(comment !== undefined ? { comment } : {}), chains: names('chain'), sets: [...names('set'), ...names('map')] };
  }

  private async checkOwnership(): Promise<Awaited<ReturnType<NftablesFirewall['existing']>>> {
    const found = await this.existing();
    if (found && this.owner) checkOwner(`nftables table inet ${this.table}`, found.comment, this.owner.comment);
    return found;
  }

  private get tableComment(): string {
    return this.owner ? ` { comment ${JSON.stringify(this.owner.comment)}; }` : '';
  }

  async setup(options: SetupOptions = {}): Promise<void> {
    const sets = [
      `set blocked4 { type ipv4_addr; flags dynamic, timeout; size ${HOST_SET_SIZE}; }`,
      `set blocked6 { type ipv6_addr; flags dynamic, timeout; size ${HOST_SET_SIZE}; }`,
      'set blockednet4 { type ipv4_addr; flags interval, timeout; }',
      'set blockednet6 { type ipv6_addr; flags interval, timeout; }',
    ];
    const rules = [
      'ip saddr @blocked4 counter drop',
      'ip6 saddr @blocked6 counter drop',
      'ip saddr @blockednet4 counter drop',
      'ip6 saddr @blockednet6 counter drop',
    ];
    const found = await this.checkOwnership();
    if (options.keepEntries && options.keepRules && found?.chains.includes('prerouting')) {
      const t = `inet ${this.table}`;
      await this.run([...sets.map((set) => `add ${set.replace(/^set /, `set ${t} `)}`), ''].join('\n'));
      return;
    }
    if (options.keepEntries) {
      // The block sets and their elements stay; every chain and every other set (the fast
      // path's, which start may set up differently) is built again. One transaction: the
      // drop rules are never missing, so a restart lets no blocked source through.
      const t = `inet ${this.table}`;
      await this.run(
        [
          `add table ${t}${this.tableComment}`,
          ...(found?.chains ?? []).map((chain) => `flush chain ${t} ${chain}`),
          ...(found?.chains ?? []).map((chain) => `delete chain ${t} ${chain}`),
          ...(found?.sets ?? []).filter((set) => !BLOCK_SETS.includes(set)).map((set) => `delete set ${t} ${set}`),
          ...sets.map((set) => `add ${set.replace(/^set /, `set ${t} `)}`),
          `add chain ${t} prerouting { type filter hook prerouting priority raw; policy accept; }`,
          ...rules.map((rule) => `add rule ${t} prerouting ${rule}`),
          '',
        ].join('\n'),
      );
      return;
    }
    // "add" then "delete" makes the delete safe when no table exists; the whole script is
    // one transaction, so the ruleset never shows a half-built table.
    await this.run(
      [
        `add table inet ${this.table}`,
        `delete table inet ${this.table}`,
        `table inet ${this.table} {`,
        ...(this.owner ? [`  comment ${JSON.stringify(this.owner.comment)}`] : []),
        `  set blocked4 { type ipv4_addr; flags dynamic, timeout; size ${HOST_SET_SIZE}; }`,
        `  set blocked6 { type ipv6_addr; flags dynamic, timeout; size ${HOST_SET_SIZE}; }`,
        '  set blockednet4 { type ipv4_addr; flags interval, timeout; }',
        '  set blockednet6 { type ipv6_addr; flags interval, timeout; }',
        '  chain prerouting {',
        '    type filter hook prerouting priority raw; policy accept;',
        '    ip saddr @blocked4 counter drop',
        '    ip6 saddr @blocked6 counter drop',
        '    ip saddr @blockednet4 counter drop',
        '    ip6 saddr @blockednet6 counter drop',
        '  }',
        '}',
        '',
      ].join('\n'),
    );
  }

  // Adding an element already present keeps its timeout (no NLM_F_EXCL, as nft's "add").
  // Infinity: no timeout. A tag becomes the element's comment, as `nft list` shows it.
  async add(target: AddressOrNetwork, timeoutMs: number, tag?: string): Promise<void> {
    const { set, elements } = setElements({ target, timeoutMs, tag });
    const errno = this.batch([{ type: NFT_MSG_NEWSETELEM, set, elements }]);
    if (errno !== 0) this.fail('add', target.text, set, errno);
  }

  /**
   * Many additions in one transaction: the elements of each set in as few messages as the
   * attribute size allows, all of them in one netlink batch the kernel applies or rejects whole.
   */
  async addMany(adds: FirewallAdd[]): Promise<void> {
    if (adds.length > ADD_MANY_MAX) throw new Error(`nftables addMany: ${adds.length} additions, at most ${ADD_MANY_MAX} fit one netlink batch`);
    const bySet = new Map<string, Buffer[]>();
    for (const add of adds) {
      const { set, elements } = setElements(add);
      let list = bySet.get(set);
      if (!list) bySet.set(set, (list = []));
      list.push(Buffer.concat(elements)); // start and end of an interval stay in one message
    }
    const messages: SetMessage[] = [];
    for (const [set, list] of bySet) {
      let elements: Buffer[] = [];
      let size = 0;
      for (const e of list) {
        if (size + e.length > MAX_ELEMENTS_BYTES && elements.length) {
          messages.push({ type: NFT_MSG_NEWSETELEM, set, elements });
          elements = [];
          size = 0;
        }
        elements.push(e);
        size += e.length;
      }
      if (elements.length) messages.push({ type: NFT_MSG_NEWSETELEM, set, elements });
    }
    if (messages.length === 0) return;
    const errno = this.batch(messages);
    if (errno !== 0) this.fail('add', `${adds.length} addresses (${adds[0]!.target.text} first)`, [...bySet.keys()].join(', '), errno);
  }

  async remove(target: AddressOrNetwork): Promise<void> {
    const { start, end } = elementsOf(target);
    const set = end === undefined ? hostSet(target.family) : netSet(target.family);
    const errno = this.batch([{ type: NFT_MSG_DELSETELEM, set, elements: [nest(NFTA_LIST_ELEM, key(start)), ...endElement(end)] }]);
    if (errno !== 0 && errno !== ENOENT) this.fail('remove', target.text, set, errno);
  }

  async replace(a: FirewallAdd): Promise<void> {
    const { start, end } = elementsOf(a.target);
    const { set, elements } = setElements(a);
    const errno = this.batch([
      { type: NFT_MSG_DELSETELEM, set, elements: [nest(NFTA_LIST_ELEM, key(start)), ...endElement(end)] },
      { type: NFT_MSG_NEWSETELEM, set, elements },
    ]);
    // Gone already (expired, or removed behind our back): the batch did nothing; add it.
    if (errno === ENOENT) return this.add(a.target, a.timeoutMs, a.tag);
    if (errno !== 0) this.fail('replace', a.target.text, set, errno);
  }

  /** Set-element messages in one batch (one transaction); the first errno (0: done). */
  private batch(messages: SetMessage[]): number {
    const socket = (this.socket ??= new NetlinkSocket(NETLINK_NETFILTER));
    const parts: Part[] = [
      { type: NFNL_MSG_BATCH_BEGIN, flags: 0, body: [nfgenmsg(0, NFNL_SUBSYS_NFTABLES)] },
      ...messages.map((m) => ({
        type: (NFNL_SUBSYS_NFTABLES << 8) | m.type,
        flags: NLM_F_CREATE | NLM_F_ACK,
        body: [
          nfgenmsg(NFPROTO_INET),
          attr(NFTA_SET_ELEM_LIST_TABLE, cstring(this.table)),
          attr(NFTA_SET_ELEM_LIST_SET, cstring(m.set)),
          nest(NFTA_SET_ELEM_LIST_ELEMENTS, ...m.elements),
        ],
      })),
      { type: NFNL_MSG_BATCH_END, flags: 0, body: [nfgenmsg(0, NFNL_SUBSYS_NFTABLES)] },
    ];
    return socket.request(parts).find((e) => e !== 0) ?? 0;
  }

  private fail(op: string, address: string, set: string, errno: number): never {
    const code = errnoName(errno);
    const why =
      errno === ENOENT
        ? `no set inet ${this.table} ${set} (setup not run, or removed by someone else)`
        : code === 'EEXIST' || code === 'ENOTEMPTY'
          ? 'overlaps an interval already in the set'
          : this.socket?.lastDetail ?? '';
    throw new NetlinkError(errno, code, `nftables ${op} ${address}`, why);
  }

  /**
   * The sets' elements, dumped over netlink on a socket of its own: at 100,000 entries `nft -j`
   * took seconds of CPU and its JSON a long stretch of the event loop; the dump is read one
   * datagram per turn of the loop, so claims and reports go on meanwhile. The kernel resumes
   * a dump by counting what it sent, so a change meanwhile can skip or repeat elements. A
   * host set's elements stand alone: one skipped is added again by the reconcile, none is
   * invented. An interval set's start and end must pair up, so its listing is taken again
   * when the ruleset's generation moved under it (it is small: one or two datagrams).
   */
  async list(family: Family): Promise<FirewallEntry[]> {
    const socket = new NetlinkSocket(NETLINK_NETFILTER);
    try {
      const out: FirewallEntry[] = [];
      await this.dumpSet(socket, hostSet(family), (e) => {
        const entry = hostEntry(e, family);
        if (entry) out.push(entry);
      });
      for (let attempt = 1; ; attempt++) {
        const intervals: IntervalElement[] = [];
        if (await this.dumpSet(socket, netSet(family), (e) => intervals.push(intervalElement(e)))) {
          for (const entry of networkEntries(intervals, family)) out.push(entry);
          return out;
        }
        if (attempt === LISTING_ATTEMPTS) throw new Error(`nftables list inet ${this.table} ${netSet(family)}: the set changed during each of ${LISTING_ATTEMPTS} listings`);
      }
    } finally {
      socket.close();
    }
  }

  /** Dumps one set's elements to `visit`; false when the ruleset changed while it ran. */
  private async dumpSet(socket: NetlinkSocket, set: string, visit: Parameters<typeof elementsIn>[3]): Promise<boolean> {
    const part = { type: (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, flags: 0, body: [nfgenmsg(NFPROTO_INET), attr(NFTA_SET_ELEM_LIST_TABLE, cstring(this.table)), attr(NFTA_SET_ELEM_LIST_SET, cstring(set))] };
    // Each message carries the ruleset's generation (nfgenmsg's resource id): it must not move.
    let generation: number | undefined;
    let steady = true;
    try {
      const consistent = await socket.dumpInTurns(
        part,
        (data, from, to) => {
          const id = to - from >= 4 ? data.readUInt16BE(from + 2) : -1;
          if ((generation ??= id) !== id) steady = false;
          elementsIn(data, from, to, visit, LE);
        },
        LISTING.timeoutMs,
      );
      return consistent && steady;
    } catch (err) {
      if (err instanceof NetlinkError && err.errno === ENOENT) throw new NetlinkError(err.errno, err.code, `nftables list ${set}`, `no set inet ${this.table} ${set}`);
      throw err;
    }
  }

  /** The kernel fast path over this table (response.kernelFastPath). */
  fastPath(settings: FastPathSettings): FastPath {
    return new NftablesFastPath({ table: this.table, run: (script) => this.run(script), remove: (target) => this.remove(target), hostSetSize: HOST_SET_SIZE }, settings);
  }

  /**
   * The anti-spoofing chain (AntiSpoofing): in prerouting at raw priority, so forwarded
   * packets and packets for the host alike, before conntrack and any NAT (a pod's masqueraded
   * traffic still has the pod's source here). A packet from a pod-side interface is dropped
   * when its source would not route back by that interface and routes out by an uplink: one
   * route lookup per packet from a pod, none for the uplinks' own traffic. An unspecified
   * source (DHCP, duplicate address detection) is no forgery.
   */
  private async enableAntiSpoofing(): Promise<void> {
    const t = `inet ${this.table}`;
    await this.run(
      [
        // Interface indexes (nft takes names and resolves them): what fib's oif gives.
        `add set ${t} uplinks { type iface_index; flags timeout; }`,
        `add chain ${t} antispoof { type filter hook prerouting priority raw; policy accept; }`,
        `add rule ${t} antispoof iif @uplinks return`,
        // Only the pod side is judged: CNIs attach pods by veths (Calico, Cilium, kindnet)
        // or a bridge of them (the bridge plugin, flannel). A second NIC, a bond, a VLAN or a
        // macvlan may carry asymmetric routes, which are no forgery.
        `add rule ${t} antispoof meta iifkind != { "veth", "bridge" } return`,
        `add rule ${t} antispoof ip saddr 0.0.0.0 return`,
        `add rule ${t} antispoof ip6 saddr :: return`,
        `add rule ${t} antispoof fib saddr . iif oif missing fib saddr oif @uplinks counter drop`,
        '',
      ].join('\n'),
    );
  }

  private async spoofedDropped(): Promise<number> {
    const { stdout } = await runProgram([this.nft, '-j', 'list', 'chain', 'inet', this.table, 'antispoof']);
    return dropCounters(stdout);
  }

  /** One transaction: the packet path sees the old elements or the new ones, never neither. */
  private async replaceElements(set: string, elements: string[]): Promise<void> {
    const t = `inet ${this.table}`;
    await this.run(`flush set ${t} ${set}\n${elements.length ? `add element ${t} ${set} { ${elements.join(', ')} }\n` : ''}`);
  }

  async teardown(): Promise<void> {
    this.socket?.close();
    this.socket = null;
    if (!(await this.checkOwnership())) return;
    await this.run(`delete table inet ${this.table}\n`);
  }
}

/** An interface name as the kernel allows it, before it reaches an nft script. */
export function checkInterfaceName(name: string): string {
  if (!/^[A-Za-z0-9_.@:-]{1,15}$/.test(name)) throw new Error(`bad interface name ${JSON.stringify(name)}`);
  return name;
}

/** Packets counted by the dropping rules of an `nft -j list chain` listing. */
export function dropCounters(json: string): number {
  const doc = JSON.parse(json) as { nftables?: { rule?: { expr?: Record<string, unknown>[] } }[] };
  let packets = 0;
  for (const item of doc.nftables ?? []) {
    const expr = item.rule?.expr ?? [];
    if (!expr.some((e) => 'drop' in e)) continue;
    for (const e of expr) if (e.counter && typeof (e.counter as { packets?: unknown }).packets === 'number') packets += (e.counter as { packets: number }).packets;
  }
  return packets;
}

const key = (bytes: Uint8Array): Buffer => nest(NFTA_SET_ELEM_KEY, attr(NFTA_DATA_VALUE, bytes));
const endElement = (end: Uint8Array | null | undefined): Buffer[] =>
  end ? [nest(NFTA_LIST_ELEM, attr(NFTA_SET_ELEM_FLAGS, u32be(NFT_SET_ELEM_INTERVAL_END)), key(end))] : [];
