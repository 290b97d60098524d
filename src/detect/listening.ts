// Which ports a real service uses, from /proc/net/{tcp,tcp6,udp,udp6}, refreshed while
// running: a packet to a port that is now in use is not a probe, so a service started
// after the sentry is never reported.
import { readFile } from 'node:fs/promises';
import type { Protocol } from '../policy/types.js';

const TCP_LISTEN = '0A';

/**
 * Marks in `ports` every local port of a /proc/net table: TCP sockets in LISTEN, UDP
 * sockets of any state (a bound UDP socket receives whatever arrives on its port).
 */
export function markPortsInUse(table: string, protocol: Protocol, ports: Uint8Array): void {
  let start = table.indexOf('\n') + 1; // the first line is the column header
  while (start > 0 && start < table.length) {
    let end = table.indexOf('\n', start);
    if (end < 0) end = table.length;
    // "  0: 0100007F:0050 00000000:0000 0A ..." : local address, remote address, state.
    const line = table.slice(start, end).trim().split(/\s+/);
    start = end + 1;
    const local = line[1];
    const state = line[3];
    if (!local || !state) continue;
    if (protocol === 'tcp' && state !== TCP_LISTEN) continue;
    const port = parseInt(local.slice(local.lastIndexOf(':') + 1), 16);
    if (port > 0 && port < 65536) ports[port] = 1;
  }
}

export class PortsInUse {
  /** 1 where a port is in use, indexed by port number. */
  readonly tcp = new Uint8Array(65536);
  readonly udp = new Uint8Array(65536);

  constructor(private readonly procNet = '/proc/net') {}

  async refresh(): Promise<void> {
    const next = { tcp: new Uint8Array(65536), udp: new Uint8Array(65536) };
    for (const protocol of ['tcp', 'udp'] as const)
      for (const file of [protocol, `${protocol}6`]) {
        const text = await readFile(`${this.procNet}/${file}`, 'utf8').catch(() => ''); // no IPv6: no file
        markPortsInUse(text, protocol, next[protocol]);
      }
    // Swapped in whole so the packet path never sees a half-read table.
    this.tcp.set(next.tcp);
    this.udp.set(next.udp);
  }
}
