// Chooses the firewall backend: nftables when the nft tool works, else iptables + ipset.
import type { FirewallBackend } from '../../policy/types.js';
import { runProgram } from '../run-program.js';
import type { Firewall } from './firewall.js';
import { IptablesFirewall } from './iptables.js';
import { NftablesFirewall } from './nftables.js';
import type { FirewallNames } from './owner.js';

async function works(argv: string[]): Promise<boolean> {
  try {
    await runProgram(argv);
    return true;
  } catch {
    return false;
  }
}

/** The backend's firewall, with the objects of the owner `names` gives (owner.ts). */
export async function selectFirewall(backend: FirewallBackend, names: FirewallNames): Promise<Firewall | null> {
  const nftables = () => new NftablesFirewall('nft', names.table, names);
  const iptables = () => new IptablesFirewall(names);
  switch (backend) {
    case 'none':
      return null;
    case 'nftables':
      return nftables();
    case 'iptables':
      return iptables();
    case 'auto':
      if (await works(['nft', 'list', 'tables'])) return nftables();
      if ((await works(['ipset', 'version'])) && (await works(['iptables', '-V']))) return iptables();
      throw new Error(
        'response.firewall is auto but neither nft nor iptables+ipset works here: install nftables (or iptables and ipset), run as root, or set response.firewall: none',
      );
  }
}
