// The kernel fast path's nflog reader. Its rules (nftables-fast-path.ts) drop
// a probe to a tripwire port and put its source in the blocked set at that first packet,
// then log the packet to an nflog group; this reads the group and reports each packet as
// a probe, so the sentry logs, counts and completes the response as for any detection.
import { addressAt } from '../../net/address.js';
import { isV4MappedAt } from '../../net/ip.js';
import {
  NETLINK_NETFILTER,
  NLM_F_ACK,
  NetlinkSocket,
  attr,
  attributesOf,
  errnoName,
  messagesOf,
  nfgenmsg,
  u32be,
  u8,
} from '../../net/netlink.js';
import type { Protocol } from '../../policy/types.js';
import { FLAG_NAMES, IPPROTO_TCP, IPPROTO_UDP, classifyTcp, newParsed, parseIPv4, parseTransport } from '../../net/packet.js';
import type { Probe } from '../../engine/probe.js';

/** The nflog group the rules log to (one listener per group and network namespace). */
export const NFLOG_GROUP = 27504;
export const PREFIX_BLOCKED = 'kube-portsentry: blocked';
export const PREFIX_RATE_LIMITED = 'kube-portsentry: rate-limited';
/** A probe whose source would not route back by the interface it came in on. */
export const PREFIX_SPOOFED = 'kube-portsentry: spoofed';

// linux/netfilter/nfnetlink_log.h
const NFNL_SUBSYS_ULOG = 4;
const NFULNL_MSG_PACKET = 0;
const NFULNL_MSG_CONFIG = 1;
const NFULA_CFG_CMD = 1;
const NFULA_CFG_MODE = 2;
const NFULA_CFG_QTHRESH = 5;
const NFULNL_CFG_CMD_BIND = 1;
const NFULNL_COPY_PACKET = 2;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;
const COPY_RANGE = 128;
const NFPROTO_IPV4 = 2;
const NFPROTO_IPV6 = 10;

export interface KernelOptions {
  /** The mode of each protocol the rules trap. */
  modes: Partial<Record<Protocol, 'stealth' | 'advanced'>>;
  onProbe: (probe: Probe) => void;
  /** A probe the rules found forged (failed the reverse-path check): never a detection. */
  onSpoofed: (probe: Probe) => void;
  /** Log messages the kernel could not deliver (the socket's queue was full). */
  onLoss?: () => void;
}

export class KernelDetector {
  private socket: NetlinkSocket | null = null;
  private readonly parsed = newParsed();
  /** Logged packets that could not be read as a probe. */
  unreadable = 0;
  /** The mode of each protocol the rules trap (a policy edit may change them). */
  modes: KernelOptions['modes'];

  constructor(private readonly options: KernelOptions) {
    this.modes = options.modes;
  }

  start(group = NFLOG_GROUP): void {
    const socket = new NetlinkSocket(NETLINK_NETFILTER, (datagram) => (datagram ? this.onDatagram(datagram) : this.options.onLoss?.()));
    const mode = Buffer.alloc(6); // struct nfulnl_msg_config_mode (packed): copy range, copy mode
    mode.writeUInt32BE(COPY_RANGE, 0);
    mode[4] = NFULNL_COPY_PACKET;
    // Every message is sent at once (a threshold of 1), not held for a batch of 100 or a second.
    const [errno = 0] = socket.request([
      {
        type: (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG,
        flags: NLM_F_ACK,
        body: [nfgenmsg(0, group), attr(NFULA_CFG_CMD, u8(NFULNL_CFG_CMD_BIND)), attr(NFULA_CFG_MODE, mode), attr(NFULA_CFG_QTHRESH, u32be(1))],
      },
    ]);
    if (errno !== 0) {
      socket.close();
      const why = errnoName(errno) === 'EBUSY' ? ' (another process listens on it)' : '';
      throw new Error(`cannot listen on nflog group ${group}: ${errnoName(errno)}${why}`);
    }
    this.socket = socket;
  }

  stop(): void {
    this.socket?.close();
    this.socket = null;
  }

  private onDatagram(data: Buffer): void {
    for (const m of messagesOf(data)) {
      if (m.type !== ((NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_PACKET) || m.to - m.from < 4) continue;
      const family = data[m.from];
      const attrs = attributesOf(data, m.from + 4, m.to);
      const payload = attrs.get(NFULA_PAYLOAD);
      const prefix = attrs.get(NFULA_PREFIX);
      const text = prefix ? data.toString('latin1', prefix[0], prefix[1]).replace(/\0+$/, '') : '';
      if (!payload || (text !== PREFIX_BLOCKED && text !== PREFIX_RATE_LIMITED && text !== PREFIX_SPOOFED)) continue;
      const probe = this.probeOf(data, payload[0], payload[1] - payload[0], family === NFPROTO_IPV6 ? 6 : family === NFPROTO_IPV4 ? 4 : 0);
      if (!probe) {
        this.unreadable++;
        continue;
      }
      if (text === PREFIX_SPOOFED) {
        this.options.onSpoofed(probe);
        continue;
      }
      probe.blockedInKernel = text === PREFIX_BLOCKED;
      probe.refusedInKernel = text === PREFIX_RATE_LIMITED;
      this.options.onProbe(probe);
    }
  }

  /** A logged packet (from its network header) as a probe, or null. */
  private probeOf(buf: Buffer, at: number, length: number, family: 0 | 4 | 6): Probe | null {
    const p = this.parsed;
    let sourceAt: number;
    if (family === 4) {
      if (parseIPv4(buf, length, p, at) !== null) return null;
      sourceAt = at + 12;
    } else if (family === 6) {
      // The rules matched the transport header past any extension headers; find it too.
      if (length < 40 || buf[at]! >> 4 !== 6) return null;
      let next = buf[at + 6]!;
      let offset = 40;
      while (next === 0 || next === 43 || next === 60 || next === 51 || next === 44) {
        if (length < offset + 8) return null;
        if (next === 44 && ((buf[at + offset + 2]! << 8) | buf[at + offset + 3]!) & 0xfff8) return null; // not a first fragment
        const size = next === 44 ? 8 : next === 51 ? (buf[at + offset + 1]! + 2) * 4 : (buf[at + offset + 1]! + 1) * 8;
        next = buf[at + offset]!;
        offset += size;
      }
      p.protocol = next;
      if (parseTransport(buf, length, offset, p, at) !== null) return null;
      sourceAt = at + 8;
      // An IPv4-mapped source is forged (the rules send it to trap_spoofed): never read as the IPv4 address it names.
      if (isV4MappedAt(buf, sourceAt)) return null;
    } else return null;
    const protocol: Protocol | null = p.protocol === IPPROTO_TCP ? 'tcp' : p.protocol === IPPROTO_UDP ? 'udp' : null;
    const mode = protocol && this.modes[protocol];
    if (!protocol || !mode) return null;
    return {
      time: Date.now(),
      protocol,
      mode,
      source: addressAt(buf, sourceAt, family),
      port: p.destinationPort,
      // The rules trap only packets without ACK and RST, so a TCP one always classifies.
      type: protocol === 'tcp' ? (classifyTcp(p.flags) ?? 'oddball') : 'udp',
      flags: protocol === 'tcp' ? FLAG_NAMES[p.flags] : undefined,
      verified: false,
    };
  }
}
