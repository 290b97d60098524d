// iptables + ipset backend, for hosts without nftables: two hash:net sets with timeouts,
// a chain of our own in the raw table, and one jump to it from PREROUTING per family.
// Adding and removing one address, the per-block work, is one netlink request to the
// ipset subsystem (no ipset process per block, as for nftables: see src/net/netlink.ts);
// many additions (a restart's rebuild) go as many requests in one datagram.
import { addressOrNetworkOf, prefixOf, type AddressOrNetwork } from '../../net/address.js';
import type { Family } from '../../net/ip.js';
import { ProgramError, runProgram } from '../run-program.js';
import { ADD_MANY_MAX, LISTING, checkTag, timeoutSeconds, type Firewall, type FirewallAdd, type FirewallEntry, type SetupOptions } from './firewall.js';
import { checkOwner } from './owner.js';
import {
  NETLINK_NETFILTER,
  NLA_F_NET_BYTEORDER,
  NLM_F_ACK,
  NetlinkError,
  NetlinkSocket,
  attr,
  cstring,
  errnoName,
  nest,
  nfgenmsg,
  u32be,
  u8,
  type Part,
} from '../../net/netlink.js';

// linux/netfilter/ipset/ip_set.h
const NFNL_SUBSYS_IPSET = 6;
const IPSET_PROTOCOL = 7;
const IPSET_CMD_ADD = 9;
const IPSET_CMD_DEL = 10;
const IPSET_ATTR_PROTOCOL = 1;
const IPSET_ATTR_SETNAME = 2;
const IPSET_ATTR_DATA = 7;
const IPSET_ATTR_IP = 1;
const IPSET_ATTR_CIDR = 3;
const IPSET_ATTR_TIMEOUT = 6;
const IPSET_ATTR_COMMENT = 26;
const IPSET_ATTR_IPADDR_IPV4 = 1;
const IPSET_ATTR_IPADDR_IPV6 = 2;
const AF_INET = 2;
/** ipset's own error numbers (IPSET_ERR_PRIVATE and up) that a bad add can meet. */
const IPSET_ERRORS: Record<number, string> = {
  4097: 'kernel and ipset protocol versions differ',
  4102: 'set type mismatch',
  4104: 'invalid CIDR',
  4106: 'invalid family',
  4107: 'the set has no timeouts, or the timeout is out of range',
};

/** Each ipset message gets an ack of its own, about 1 KB of the socket's receive buffer. */
const ACKS_PER_DATAGRAM = 250;

/** One ipset request, with what it is about for its error. */
interface Message {
  target: AddressOrNetwork;
  part: Part;
}

export const IPSET_PREFIX = 'kube-portsentry';
export const IPT_CHAIN = 'KUBE-PORTSENTRY';
/** The jump's comment before owners were marked: taken as ours. */
const LEGACY_COMMENT = 'kube-portsentry';

const IPSET_MAX_TIMEOUT = 2_147_483;
const iptables = (family: Family): string => (family === 4 ? 'iptables' : 'ip6tables');

const sameRule = (a: string[], b: string[]): boolean => a.length === b.length && a.every((w, k) => w === b[k]);

/** The words of one `iptables -S` line (double quotes group, as iptables prints a comment). */
function words(line: string): string[] {
  return [...line.matchAll(/"((?:[^"\\]|\\.)*)"|(\S+)/g)].map((m) => (m[1] !== undefined ? m[1].replace(/\\(.)/g, '$1') : m[2]!));
}

async function quietly(argv: string[]): Promise<boolean> {
  try {
    await runProgram(argv);
    return true;
  } catch (err) {
    if (err instanceof ProgramError) return false;
    throw err;
  }
}

export class IptablesFirewall implements Firewall {
  readonly name = 'iptables';
  private families: Family[] = [];
  private socket: NetlinkSocket | null = null;
  private readonly names: { setPrefix: string; chain: string; comment: string };

  /** The owner's set prefix, chain and comment (owner.ts); the standalone sentry's by default. */
  constructor(names: { setPrefix: string; chain: string; comment: string } = { setPrefix: IPSET_PREFIX, chain: IPT_CHAIN, comment: LEGACY_COMMENT }) {
    this.names = names;
  }

  private setName(family: Family): string {
    return `${this.names.setPrefix}-v${family}`;
  }

  private get jump(): string[] {
    return ['PREROUTING', '-m', 'comment', '--comment', this.names.comment, '-j', this.names.chain];
  }

  /** The jumps to our chain now in PREROUTING, as `iptables -D` arguments, after checking whose they are. */
  private async jumps(family: Family): Promise<string[][]> {
    let listing: string;
    try {
      listing = (await runProgram([iptables(family), '-w', '-t', 'raw', '-S', 'PREROUTING'])).stdout;
    } catch (err) {
      if (err instanceof ProgramError) return []; // no raw table for this family
      throw err;
    }
    const found: string[][] = [];
    for (const line of listing.split('\n')) {
      const w = words(line);
      if (w[0] !== '-A' || !w.includes('-j') || w[w.indexOf('-j') + 1] !== this.names.chain) continue;
      const comment = w[w.indexOf('--comment') + 1];
      checkOwner(`${iptables(family)} raw chain ${this.names.chain}`, w.includes('--comment') && comment !== LEGACY_COMMENT ? comment : undefined, this.names.comment);
      found.push(w.slice(1));
    }
    return found;
  }

  async setup(options: SetupOptions = {}): Promise<void> {
    const jumps = { 4: await this.jumps(4), 6: await this.jumps(6) }; // refuses another owner's chain
    if (!options.keepEntries) await this.teardown();
    this.families = [];
    for (const family of [4, 6] as const) {
      const ipt = iptables(family);
      await runProgram([
        'ipset', 'create', this.setName(family), 'hash:net', 'family', family === 4 ? 'inet' : 'inet6',
        'timeout', '0', 'maxelem', '1048576', 'comment', ...(options.keepEntries ? ['-exist'] : []),
      ]);
      // Kept entries keep their rules in place: each is checked and added only when missing,
      // so a restart never leaves a moment without the drop rule.
      const kept = options.keepEntries && (await quietly([ipt, '-w', '-t', 'raw', '-S', this.names.chain]));
      if (!kept) {
        try {
          await runProgram([ipt, '-w', '-t', 'raw', '-N', this.names.chain]);
        } catch (err) {
          // A host without IPv6 has no ip6tables raw table: run IPv4 only.
          if (family === 6) {
            await quietly(['ipset', 'destroy', this.setName(family)]);
            continue;
          }
          throw err;
        }
      }
      const drop = [this.names.chain, '-m', 'set', '--match-set', this.setName(family), 'src', '-j', 'DROP'];
      if (!kept || !(await quietly([ipt, '-w', '-t', 'raw', '-C', ...drop]))) await runProgram([ipt, '-w', '-t', 'raw', '-A', ...drop]);
      if (!kept || !(await quietly([ipt, '-w', '-t', 'raw', '-C', ...this.jump]))) await runProgram([ipt, '-w', '-t', 'raw', '-I', ...this.jump]);
      // Jumps other than one of ours (a crash's duplicates, an older version's) go.
      let ours = false;
      for (const rule of kept ? jumps[family] : []) {
        if (!ours && sameRule(rule, this.jump)) ours = true;
        else await quietly([ipt, '-w', '-t', 'raw', '-D', ...rule]);
      }
      this.families.push(family);
    }
  }

  // Without NLM_F_EXCL the kernel treats the request as ipset's -exist: adding an entry
  // already there refreshes its timeout, removing one already gone is no error.
  async add(target: AddressOrNetwork, timeoutMs: number, tag?: string): Promise<void> {
    this.send([this.addMessage({ target, timeoutMs, tag })], 'add');
  }

  /**
   * Many additions as ipset messages, ACKS_PER_DATAGRAM to a datagram. Not one transaction:
   * each message stands alone, so on failure others may be in (adding again is no error).
   */
  async addMany(adds: FirewallAdd[]): Promise<void> {
    if (adds.length > ADD_MANY_MAX) throw new Error(`iptables addMany: ${adds.length} additions, at most ${ADD_MANY_MAX} at a time`);
    const messages = adds.map((a) => this.addMessage(a));
    for (let i = 0; i < messages.length; i += ACKS_PER_DATAGRAM) this.send(messages.slice(i, i + ACKS_PER_DATAGRAM), 'add');
  }

  async remove(target: AddressOrNetwork): Promise<void> {
    this.send([this.message(IPSET_CMD_DEL, target, [])], 'remove');
  }

  private addMessage(a: FirewallAdd): Message {
    // ipset's longest timeout is 2^31/1000 seconds (about 24 days); the owner re-adds after
    // that. 0 means no timeout. A tag is the entry's comment extension (the sets have them).
    const seconds = Math.min(timeoutSeconds(a.timeoutMs), IPSET_MAX_TIMEOUT);
    const comment = checkTag(a.tag) ? [attr(IPSET_ATTR_COMMENT, cstring(a.tag!))] : [];
    return this.message(IPSET_CMD_ADD, a.target, [attr(IPSET_ATTR_TIMEOUT | NLA_F_NET_BYTEORDER, u32be(seconds)), ...comment]);
  }

  private message(command: number, target: AddressOrNetwork, extra: Buffer[]): Message {
    const family = target.family;
    this.requireFamily(family);
    const prefix = prefixOf(target);
    const ip = attr((family === 4 ? IPSET_ATTR_IPADDR_IPV4 : IPSET_ATTR_IPADDR_IPV6) | NLA_F_NET_BYTEORDER, target.bytes);
    const data = [nest(IPSET_ATTR_IP, ip), ...(prefix < target.bytes.length * 8 ? [attr(IPSET_ATTR_CIDR, u8(prefix))] : []), ...extra];
    return {
      target,
      part: {
        type: (NFNL_SUBSYS_IPSET << 8) | command,
        flags: NLM_F_ACK,
        body: [
          nfgenmsg(AF_INET), // ipset's own tool sends AF_INET for either family
          attr(IPSET_ATTR_PROTOCOL, u8(IPSET_PROTOCOL)),
          attr(IPSET_ATTR_SETNAME, cstring(this.setName(family))),
          nest(IPSET_ATTR_DATA, ...data),
        ],
      },
    };
  }

  /** Sends the messages in one datagram; fails with the first that the kernel refused. */
  private send(messages: Message[], op: string): void {
    const socket = (this.socket ??= new NetlinkSocket(NETLINK_NETFILTER));
    const errnos = socket.request(messages.map((m) => m.part));
    const failed = errnos.findIndex((e) => e !== 0);
    if (failed < 0) return;
    const errno = errnos[failed]!;
    const { target } = messages[failed]!;
    const why = errno === 2 ? `no set ${this.setName(target.family)} (setup not run, or destroyed by someone else)` : (IPSET_ERRORS[errno] ?? '');
    throw new NetlinkError(errno, errno >= 4096 ? `IPSET_ERR ${errno}` : errnoName(errno), `ipset ${op} ${target.text}`, why);
  }

  async list(family: Family): Promise<FirewallEntry[]> {
    if (!this.families.includes(family)) return [];
    const { stdout } = await runProgram(['ipset', 'list', this.setName(family), '-output', 'plain'], LISTING);
    return parseIpsetList(stdout);
  }

  async teardown(): Promise<void> {
    this.socket?.close();
    this.socket = null;
    await this.removeRules();
    for (const family of [4, 6] as const) await quietly(['ipset', 'destroy', this.setName(family)]);
  }

  /** Removes our chain and every jump to it (duplicates left by a crash too), leaving the sets and their entries. */
  private async removeRules(): Promise<void> {
    for (const family of [4, 6] as const) {
      const ipt = iptables(family);
      for (const rule of await this.jumps(family)) await quietly([ipt, '-w', '-t', 'raw', '-D', ...rule]);
      await quietly([ipt, '-w', '-t', 'raw', '-F', this.names.chain]);
      await quietly([ipt, '-w', '-t', 'raw', '-X', this.names.chain]);
    }
  }

  private requireFamily(family: Family): void {
    if (!this.families.includes(family)) throw new Error(`IPv${family} blocking is not available (no ${iptables(family)} raw table)`);
  }
}

/** Members of `ipset list -output plain`; a member that is no address or network is left out. */
export function parseIpsetList(text: string): FirewallEntry[] {
  const members = text.split('\nMembers:\n')[1] ?? '';
  const out: FirewallEntry[] = [];
  for (const line of members.split('\n')) {
    const m = /^(\S+)(?:\s+timeout\s+(\d+))?(?:\s+comment\s+"([^"]*)")?/.exec(line.trim());
    const target = m ? addressOrNetworkOf(m[1]!) : null;
    if (!m || !target) continue;
    out.push({
      target,
      ...(m[2] !== undefined && m[2] !== '0' ? { expiresInSeconds: Number(m[2]) } : {}),
      ...(m[3] ? { tag: m[3] } : {}),
    });
  }
  return out;
}
