// Which ports a real service uses, refreshed while running: a packet to a port that is
// now in use is not a probe, so a service started after the sentry is never reported.
// TCP listeners come from a sock_diag dump of listening sockets; /proc/net/tcp lists every
// connection and took 9 ms per read in a namespace (the kernel walks its whole connection
// table), 16 ms of CPU a second with tcp6 on an idle host. UDP sockets, few and cheap to
// list, come from /proc/net/{udp,udp6}, as does TCP when sock_diag is not there.
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { NetlinkSocket } from '../net/netlink.js';
import type { Protocol } from '../policy/types.js';

const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const TCP_LISTEN_STATE = 10;
const AF_INET = 2;
const AF_INET6 = 10;
const IPPROTO_TCP = 6;

/** Marks the local port of every listening TCP socket (IPv4 and IPv6) in `ports`. */
export function markTcpListeners(socket: NetlinkSocket, ports: Uint8Array): void {
  for (const family of [AF_INET, AF_INET6]) {
    const request = Buffer.alloc(56); // struct inet_diag_req_v2
    request[0] = family;
    request[1] = IPPROTO_TCP;
    // The state mask is in host order.
    if (endianness() === 'LE') request.writeUInt32LE(1 << TCP_LISTEN_STATE, 4);
    else request.writeUInt32BE(1 << TCP_LISTEN_STATE, 4);
    socket.dump({ type: SOCK_DIAG_BY_FAMILY, flags: 0, body: [request] }, (data, from, to) => {
      // struct inet_diag_msg: family, state, timer, retrans, then the socket id, source port first (big-endian).
      if (to - from >= 6) ports[data.readUInt16BE(from + 4)] = 1;
    });
  }
}

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

  private diag: NetlinkSocket | null | undefined;

  constructor(private readonly procNet = '/proc/net') {}

  async refresh(): Promise<void> {
    const next = { tcp: new Uint8Array(65536), udp: new Uint8Array(65536) };
    const diag = this.diagSocket();
    let tcpDone = false;
    if (diag) {
      try {
        markTcpListeners(diag, next.tcp);
        tcpDone = true;
      } catch {
        next.tcp.fill(0); // a partial dump: read the tables instead
      }
    }
    for (const protocol of tcpDone ? (['udp'] as const) : (['tcp', 'udp'] as const))
      for (const file of [protocol, `${protocol}6`]) {
        const text = await readFile(`${this.procNet}/${file}`, 'utf8').catch(() => ''); // no IPv6: no file
        markPortsInUse(text, protocol, next[protocol]);
      }
    // Swapped in whole so the packet path never sees a half-read table.
    this.tcp.set(next.tcp);
    this.udp.set(next.udp);
  }

  /** The sock_diag socket, opened once; null when this kernel or process has none (or a test reads fixture tables). */
  private diagSocket(): NetlinkSocket | null {
    if (this.diag === undefined) {
      try {
        this.diag = this.procNet === '/proc/net' ? new NetlinkSocket(NETLINK_SOCK_DIAG) : null;
      } catch {
        this.diag = null;
      }
    }
    return this.diag;
  }
}
