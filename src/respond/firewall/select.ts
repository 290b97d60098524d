// Chooses the firewall backend: nftables when the nft tool works, else iptables + ipset.
import type { FirewallBackend } from '../../policy/types.js';
import { runProgram } from '../run-program.js';
import type { Firewall } from './firewall.js';
import { IptablesFirewall } from './iptables.js';
import { NftablesFirewall } from './nftables.js';

async function works(argv: string[]): Promise<boolean> {
  try {
    await runProgram(argv);
    return true;
  } catch {
    return false;
  }
}

export async function selectFirewall(backend: FirewallBackend): Promise<Firewall | null> {
  switch (backend) {
    case 'none':
      return null;
    case 'nftables':
      return new NftablesFirewall();
    case 'iptables':
      return new IptablesFirewall();
    case 'auto':
      if (await works(['nft', 'list', 'tables'])) return new NftablesFirewall();
      if ((await works(['ipset', 'version'])) && (await works(['iptables', '-V']))) return new IptablesFirewall();
      throw new Error(
        'response.firewall is auto but neither nft nor iptables+ipset works here: install nftables (or iptables and ipset), run as root, or set response.firewall: none',
      );
  }
}
