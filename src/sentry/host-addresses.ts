// The host's own addresses, which are never counted or blocked: a forged packet from one
// of them must not make the host block itself.
import { networkInterfaces } from 'node:os';
import { normalizeIp } from '../net/ip.js';

export function hostAddresses(): string[] {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces()))
    for (const info of list ?? []) {
      const ip = normalizeIp(info.address);
      if (ip) out.add(ip);
    }
  return [...out];
}
