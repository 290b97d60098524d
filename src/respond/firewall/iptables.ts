// iptables + ipset backend, for hosts without nftables: two hash:net sets with timeouts,
// a chain of our own in the raw table, and one jump to it from PREROUTING per family.
import type { Family } from '../../net/ip.js';
import { ProgramError, runProgram } from '../run-program.js';
import { checkTag, timeoutSeconds, type Firewall, type FirewallEntry, type SetupOptions } from './firewall.js';

export const IPSET_PREFIX = 'kube-portsentry';
export const IPT_CHAIN = 'KUBE-PORTSENTRY';
const JUMP = ['PREROUTING', '-m', 'comment', '--comment', 'kube-portsentry', '-j', IPT_CHAIN];

const IPSET_MAX_TIMEOUT = 2_147_483;
const setName = (family: Family): string => `${IPSET_PREFIX}-v${family}`;
const iptables = (family: Family): string => (family === 4 ? 'iptables' : 'ip6tables');

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

  async setup(options: SetupOptions = {}): Promise<void> {
    if (options.keepEntries) await this.removeRules();
    else await this.teardown();
    this.families = [];
    for (const family of [4, 6] as const) {
      const ipt = iptables(family);
      await runProgram([
        'ipset', 'create', setName(family), 'hash:net', 'family', family === 4 ? 'inet' : 'inet6',
        'timeout', '0', 'maxelem', '1048576', 'comment', ...(options.keepEntries ? ['-exist'] : []),
      ]);
      try {
        await runProgram([ipt, '-w', '-t', 'raw', '-N', IPT_CHAIN]);
      } catch (err) {
        // A host without IPv6 has no ip6tables raw table: run IPv4 only.
        if (family === 6) {
          await quietly(['ipset', 'destroy', setName(family)]);
          continue;
        }
        throw err;
      }
      await runProgram([ipt, '-w', '-t', 'raw', '-A', IPT_CHAIN, '-m', 'set', '--match-set', setName(family), 'src', '-j', 'DROP']);
      await runProgram([ipt, '-w', '-t', 'raw', '-I', ...JUMP]);
      this.families.push(family);
    }
  }

  async add(address: string, family: Family, timeoutMs: number, tag?: string): Promise<void> {
    this.requireFamily(family);
    const comment = checkTag(tag) ? ['comment', tag!] : [];
    // ipset's longest timeout is 2^31/1000 seconds (about 24 days); the owner re-adds after that.
    const seconds = Math.min(timeoutSeconds(timeoutMs), IPSET_MAX_TIMEOUT);
    await runProgram(['ipset', 'add', setName(family), address, 'timeout', String(seconds), ...comment, '-exist']);
  }

  async remove(address: string, family: Family): Promise<void> {
    this.requireFamily(family);
    await quietly(['ipset', 'del', setName(family), address]);
  }

  async list(family: Family): Promise<FirewallEntry[]> {
    if (!this.families.includes(family)) return [];
    const { stdout } = await runProgram(['ipset', 'list', setName(family), '-output', 'plain']);
    return parseIpsetList(stdout);
  }

  async teardown(): Promise<void> {
    await this.removeRules();
    for (const family of [4, 6] as const) await quietly(['ipset', 'destroy', setName(family)]);
  }

  /** Removes our chain and jumps, leaving the sets (and their entries). */
  private async removeRules(): Promise<void> {
    for (const family of [4, 6] as const) {
      const ipt = iptables(family);
      while (await quietly([ipt, '-w', '-t', 'raw', '-D', ...JUMP])) {
        // remove every jump we inserted, even duplicates left by a crash
      }
      await quietly([ipt, '-w', '-t', 'raw', '-F', IPT_CHAIN]);
      await quietly([ipt, '-w', '-t', 'raw', '-X', IPT_CHAIN]);
    }
  }

  private requireFamily(family: Family): void {
    if (!this.families.includes(family)) throw new Error(`IPv${family} blocking is not available (no ${iptables(family)} raw table)`);
  }
}

/** Members of `ipset list -output plain`. */
export function parseIpsetList(text: string): FirewallEntry[] {
  const members = text.split('\nMembers:\n')[1] ?? '';
  const out: FirewallEntry[] = [];
  for (const line of members.split('\n')) {
    const m = /^(\S+)(?:\s+timeout\s+(\d+))?(?:\s+comment\s+"([^"]*)")?/.exec(line.trim());
    if (!m) continue;
    out.push({
      address: m[1]!,
      ...(m[2] !== undefined && m[2] !== '0' ? { expiresInSeconds: Number(m[2]) } : {}),
      ...(m[3] ? { tag: m[3] } : {}),
    });
  }
  return out;
}
