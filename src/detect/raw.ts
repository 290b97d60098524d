// Stealth and advanced modes (classic -stcp/-sudp, -atcp/-audp): raw sockets see every
// inbound TCP or UDP packet, so scans that never complete a connection (SYN, FIN, NULL,
// XMAS, oddball flags, UDP) are caught. The packet path parses in place and allocates
// nothing beyond what raw-socket hands over, until a packet turns out to be a probe.
import raw, { type Socket } from 'raw-socket';
import type { Protocol } from '../policy/types.js';
import type { PortsInUse } from './listening.js';
import {
  DROP_REASONS,
  FLAG_NAMES,
  IPPROTO_TCP,
  IPPROTO_UDP,
  classifyTcp,
  newParsed,
  parseIPv4,
  parseTransport,
  type DropReason,
} from './packet.js';
import type { Probe } from './probe.js';

/** Enough for the largest IPv4 header (60) plus the largest TCP header (60). */
const CAPTURE_BYTES = 128;

export interface RawOptions {
  protocol: Protocol;
  mode: 'stealth' | 'advanced';
  /** 1 for each watched port, indexed by port number. */
  watched: Uint8Array;
  inUse: PortsInUse;
  /** True when an IPv4 destination (as uint32) is one of this host's addresses. */
  isLocal4: (address: number) => boolean;
  onProbe: (probe: Probe) => void;
}

export interface RawStats {
  packets: number;
  drops: Record<DropReason | 'not-local', number>;
}

export class RawDetector {
  /**
   * Strong references for the detector's lifetime: an unreferenced raw-socket Socket is
   * garbage-collected and silently stops receiving.
   */
  private readonly sockets: Socket[] = [];
  private readonly parsed = newParsed();
  readonly stats: RawStats = {
    packets: 0,
    drops: Object.fromEntries([...DROP_REASONS, 'not-local'].map((r) => [r, 0])) as RawStats['drops'],
  };

  constructor(private readonly options: RawOptions) {}

  /** Opens the IPv4 socket, and the IPv6 one where the host has IPv6; returns the families. */
  start(): { families: (4 | 6)[]; errors: string[] } {
    const protocol = this.options.protocol === 'tcp' ? raw.Protocol.TCP : raw.Protocol.UDP;
    const families: (4 | 6)[] = [];
    const errors: string[] = [];
    for (const family of [4, 6] as const) {
      let socket: Socket;
      try {
        socket = raw.createSocket({
          addressFamily: family === 4 ? raw.AddressFamily.IPv4 : raw.AddressFamily.IPv6,
          protocol,
          bufferSize: CAPTURE_BYTES,
        });
      } catch (err) {
        if (family === 4) throw new Error(`cannot open a raw ${this.options.protocol} socket (needs CAP_NET_RAW): ${(err as Error).message}`);
        errors.push(`IPv6: ${(err as Error).message}`);
        continue;
      }
      socket.on('error', (err) => errors.push(err.message));
      socket.on('message', family === 4 ? (buf, source) => this.onIPv4(buf, source) : (buf, source) => this.onIPv6(buf, source));
      this.sockets.push(socket);
      families.push(family);
    }
    return { families, errors };
  }

  stop(): void {
    for (const socket of this.sockets.splice(0)) socket.close();
  }

  private onIPv4(buf: Buffer, source: string): void {
    this.stats.packets++;
    const reason = parseIPv4(buf, buf.length, this.parsed);
    if (reason !== null) {
      this.stats.drops[reason]++;
      return;
    }
    if (!this.options.isLocal4(this.parsed.destination4)) {
      this.stats.drops['not-local']++; // broadcast, multicast
      return;
    }
    this.inspect(source);
  }

  private onIPv6(buf: Buffer, source: string): void {
    this.stats.packets++;
    // An AF_INET6 raw socket delivers the transport header without the IPv6 header.
    this.parsed.protocol = this.options.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
    const reason = parseTransport(buf, buf.length, 0, this.parsed);
    if (reason !== null) {
      this.stats.drops[reason]++;
      return;
    }
    this.inspect(source);
  }

  private inspect(source: string): void {
    const { protocol, mode, watched, inUse } = this.options;
    const port = this.parsed.destinationPort;
    if (!watched[port] || inUse[protocol][port]) return;
    if (protocol === 'tcp') {
      const type = classifyTcp(this.parsed.flags);
      if (type === null) return; // a reply or part of a connection
      this.options.onProbe({
        time: Date.now(),
        protocol,
        mode,
        source,
        port,
        type,
        flags: FLAG_NAMES[this.parsed.flags]!,
        verified: false,
      });
    } else {
      this.options.onProbe({ time: Date.now(), protocol, mode, source, port, type: 'udp', verified: false });
    }
  }
}
