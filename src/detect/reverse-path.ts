// The reverse-path check of a probe no handshake proves: would a reply to its source leave
// by the interface the probe came in on? A packet forged from inside the node (a pod with
// NET_RAW behind the node's bridge) with an outside address fails it, since that address
// routes out another way. Asked of the kernel's own routing (RTM_GETROUTE, as rp_filter and
// nftables' fib expression ask it, policy rules included), once per source and interface
// for a few seconds.
import { endianness } from 'node:os';
import { attr, attributesOf, NetlinkError, NetlinkSocket } from '../net/netlink.js';
import { parseIp } from '../net/ip.js';

export interface ReversePath {
  /** False when a reply to `source` (from `destination`) would not leave by `ifindex`. */
  routesBack(source: string, destination: string | undefined, ifindex: number): boolean;
  close(): void;
}

const NETLINK_ROUTE = 0;
const RTM_GETROUTE = 26;
const RTA_DST = 1;
const RTA_SRC = 2;
const RTA_OIF = 4;
const RTA_MULTIPATH = 9;
const AF_INET = 2;
const AF_INET6 = 10;
const RTMSG_BYTES = 12;
const CACHE_MS = 5000;
const CACHE_ENTRIES = 65_536;
const LE = endianness() === 'LE';

export class KernelReversePath implements ReversePath {
  private socket: NetlinkSocket | null = null;
  private readonly cache = new Map<string, { ok: boolean; until: number }>();

  routesBack(source: string, destination: string | undefined, ifindex: number): boolean {
    const key = `${ifindex} ${source}`;
    const now = performance.now();
    const hit = this.cache.get(key);
    if (hit && hit.until > now) return hit.ok;
    const ok = this.lookup(source, destination, ifindex);
    this.cache.delete(key);
    this.cache.set(key, { ok, until: now + CACHE_MS });
    if (this.cache.size > CACHE_ENTRIES) this.cache.delete(this.cache.keys().next().value as string);
    return ok;
  }

  close(): void {
    this.socket?.close();
    this.socket = null;
  }

  private lookup(source: string, destination: string | undefined, ifindex: number): boolean {
    const to = parseIp(source);
    if (!to) return true;
    const from = destination ? parseIp(destination) : null;
    const withFrom = from?.family === to.family && from.bytes.some((b) => b !== 0) ? from : null;
    try {
      return this.ask(to, withFrom, ifindex);
    } catch (err) {
      if (!(err instanceof NetlinkError)) throw err;
      // No route back at all (unreachable, prohibited): spoofed.
      if (['ENETUNREACH', 'EHOSTUNREACH', 'EACCES', 'EPERM'].includes(err.code)) return false;
      // A source address the kernel will not route from (EINVAL): ask without it.
      if (withFrom && err.code === 'EINVAL') return this.ask(to, null, ifindex);
      // The kernel did not answer: do not count a probe as spoofed on no evidence.
      return true;
    }
  }

  private ask(to: { family: 4 | 6; bytes: Uint8Array }, from: { bytes: Uint8Array } | null, ifindex: number): boolean {
    const bits = to.family === 4 ? 32 : 128;
    const rtmsg = Buffer.alloc(RTMSG_BYTES);
    rtmsg[0] = to.family === 4 ? AF_INET : AF_INET6;
    rtmsg[1] = bits;
    rtmsg[2] = from ? bits : 0;
    const body = [rtmsg, attr(RTA_DST, to.bytes), ...(from ? [attr(RTA_SRC, from.bytes)] : [])];
    const socket = (this.socket ??= new NetlinkSocket(NETLINK_ROUTE));
    let ok = false;
    socket.query({ type: RTM_GETROUTE, flags: 0, body }, (data, start, end) => {
      const attrs = attributesOf(data, start + RTMSG_BYTES, end);
      const oif = attrs.get(RTA_OIF);
      if (oif && (LE ? data.readUInt32LE(oif[0]) : data.readUInt32BE(oif[0])) === ifindex) ok = true;
      const paths = attrs.get(RTA_MULTIPATH);
      // Each path: u16 length, u8 flags, u8 hops, i32 interface index, then attributes.
      for (let at = paths?.[0] ?? 0; paths && at + 8 <= paths[1]; ) {
        const length = LE ? data.readUInt16LE(at) : data.readUInt16BE(at);
        if (length < 8) break;
        if ((LE ? data.readInt32LE(at + 4) : data.readInt32BE(at + 4)) === ifindex) ok = true;
        at += (length + 3) & ~3;
      }
    });
    return ok;
  }
}
