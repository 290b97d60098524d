// Stealth and advanced modes (classic -stcp/-sudp, -atcp/-audp): raw sockets see every
// inbound TCP or UDP packet, so scans that never complete a connection (SYN, FIN, NULL,
// XMAS, oddball flags, UDP) are caught. Packets arrive in batches (src/native/rawbatch.c,
// recvmmsg) in one reused buffer; the packet path parses them in place and allocates
// nothing until a packet turns out to be a probe.
import { createRequire } from 'node:module';
import { formatIpAt } from '../net/ip.js';
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

interface RawBatchReader {
  readonly recordSize: number;
  close(): void;
}
interface NativeRawBatch {
  /** Record layout: u16 length (little-endian), u8 family, u8 unused, 16 source bytes, packet. */
  open(family: 4 | 6, protocol: number, onBatch: (records: Buffer, count: number) => void): RawBatchReader;
}
const native = createRequire(import.meta.url)('../../../build/Release/rawbatch.node') as NativeRawBatch;
const RECORD_HEADER = 20;

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
  /** Open readers, held for the detector's lifetime (closing is explicit, never by GC). */
  private readonly readers: RawBatchReader[] = [];
  private readonly parsed = newParsed();
  readonly stats: RawStats = {
    packets: 0,
    drops: Object.fromEntries([...DROP_REASONS, 'not-local'].map((r) => [r, 0])) as RawStats['drops'],
  };

  constructor(private readonly options: RawOptions) {}

  /** Opens the IPv4 socket, and the IPv6 one where the host has IPv6; returns the families. */
  start(): { families: (4 | 6)[]; errors: string[] } {
    const protocol = this.options.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
    const families: (4 | 6)[] = [];
    const errors: string[] = [];
    for (const family of [4, 6] as const) {
      try {
        this.readers.push(native.open(family, protocol, (records, count) => this.onBatch(records, count)));
        families.push(family);
      } catch (err) {
        if (family === 4) throw new Error(`cannot open a raw ${this.options.protocol} socket (needs CAP_NET_RAW): ${(err as Error).message}`);
        errors.push(`IPv6: ${(err as Error).message}`);
      }
    }
    return { families, errors };
  }

  stop(): void {
    for (const reader of this.readers.splice(0)) reader.close();
  }

  /** The native reader's batch: `count` fixed-size records in a buffer reused for every batch. */
  private onBatch(records: Buffer, count: number): void {
    const size = this.readers[0]?.recordSize ?? 0;
    const protocol = this.options.protocol === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
    const parsed = this.parsed;
    for (let i = 0, at = 0; i < count; i++, at += size) {
      this.stats.packets++;
      const length = records[at]! | (records[at + 1]! << 8);
      const family = records[at + 2] === 6 ? 6 : 4;
      const base = at + RECORD_HEADER;
      let reason: DropReason | null;
      if (family === 4) {
        reason = parseIPv4(records, length, parsed, base);
        if (reason === null && !this.options.isLocal4(parsed.destination4)) {
          this.stats.drops['not-local']++; // broadcast, multicast
          continue;
        }
      } else {
        // An AF_INET6 raw socket delivers the transport header without the IPv6 header.
        parsed.protocol = protocol;
        reason = parseTransport(records, length, 0, parsed, base);
      }
      if (reason !== null) {
        this.stats.drops[reason]++;
        continue;
      }
      this.inspect(records, at + 4, family);
    }
  }

  private inspect(records: Buffer, sourceAt: number, family: 4 | 6): void {
    const { protocol, mode, watched, inUse } = this.options;
    const port = this.parsed.destinationPort;
    if (!watched[port] || inUse[protocol][port]) return;
    const type = protocol === 'tcp' ? classifyTcp(this.parsed.flags) : 'udp';
    if (type === null) return; // a reply or part of a connection
    this.options.onProbe({
      time: Date.now(),
      protocol,
      mode,
      source: formatIpAt(records, sourceAt, family),
      port,
      type,
      flags: protocol === 'tcp' ? FLAG_NAMES[this.parsed.flags] : undefined,
      verified: false,
    });
  }

}
