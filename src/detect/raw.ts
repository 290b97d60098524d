// Stealth and advanced modes (classic -stcp/-sudp, -atcp/-audp): raw sockets see every
// inbound TCP or UDP packet, so scans that never complete a connection (SYN, FIN, NULL,
// XMAS, oddball flags, UDP) are caught. The packet path is native (src/native/rawbatch.c):
// a socket filter keeps replies and unwatched ports out of the queue, packets are read in
// batches, parsed, counted and checked against the port tables there, and this file gets
// compact probe records, identical consecutive probes folded into one with a count, each
// with the age of its packet by the kernel's receive stamp.
import { endianness } from 'node:os';
import { loadAddon } from '../native/addon.js';
import { addressAt } from '../net/address.js';
import { formatIpAt, isV4MappedAt } from '../net/ip.js';
import type { Protocol } from '../policy/types.js';
import type { PortsInUse } from './listening.js';
import { DROP_REASONS, FLAG_NAMES, IPPROTO_TCP, IPPROTO_UDP, classifyTcp, type DropReason } from '../net/packet.js';
import type { Probe } from '../engine/probe.js';

interface RawBatchReader {
  readonly recordSize: number;
  /** Packets read, the drop reasons in DROP_REASONS order, replies, unwatched, probes. */
  readonly counters: Float64Array;
  /** Whether the kernel filter is attached (not with more than 1000 watched port ranges). */
  readonly filtered: boolean;
  /** Rebuilds the socket filter from the watched table after a change in place; whether one is attached. */
  refilter(): boolean;
  close(): void;
}
export interface NativeRawBatch {
  open(
    family: 4 | 6,
    protocol: number,
    watched: Uint8Array,
    inUse: Uint8Array,
    onRecords: (records: Buffer, count: number) => void,
  ): RawBatchReader;
  /** The reader's parser: [reason (0: parsed, else 1 + index in DROP_REASONS), port, flags, IPv4 destination]. */
  parse(packet: Uint8Array, length: number, family: 4 | 6, protocol: number): [number, number, number, number];
}
export const nativeRaw = loadAddon<NativeRawBatch>('rawbatch');
const PACKETS = 0;
const FIRST_REASON = 1;
const LE = endianness() === 'LE'; // records are in host byte order

export interface RawOptions {
  protocol: Protocol;
  mode: 'stealth' | 'advanced';
  /** 1 for each watched port, indexed by port number. */
  watched: Uint8Array;
  inUse: PortsInUse;
  /** True when an IPv4 destination (as uint32) is one of this host's addresses. */
  isLocal4: (address: number) => boolean;
  /** True when the 16 bytes at `at` are one of this host's IPv6 addresses. */
  isLocal6: (bytes: Buffer, at: number) => boolean;
  onProbe: (probe: Probe) => void;
}

export interface RawStats {
  packets: number;
  drops: Record<DropReason | 'not-local' | 'mapped-source', number>;
}

export class RawDetector {
  /** Open readers, held for the detector's lifetime (closing is explicit, never by GC). */
  private readonly readers: RawBatchReader[] = [];
  /** Counts of closed readers, so stats never go backwards. */
  private readonly closed = new Float64Array(FIRST_REASON + DROP_REASONS.length);
  private notLocal = 0;
  private mappedSource = 0;

  constructor(private readonly options: RawOptions) {}

  /** Packets read and dropped by reason so far (read at housekeeping, not per packet). */
  get stats(): RawStats {
    const sum = (i: number) => this.readers.reduce((n, r) => n + r.counters[i]!, this.closed[i]!);
    const drops = { 'not-local': this.notLocal, 'mapped-source': this.mappedSource } as RawStats['drops'];
    DROP_REASONS.forEach((reason, i) => (drops[reason] = sum(FIRST_REASON + i)));
    return { packets: sum(PACKETS), drops };
  }

  /** Opens the IPv4 socket, and the IPv6 one where the host has IPv6; returns the families. */
  start(): { families: (4 | 6)[]; errors: string[]; filtered: boolean } {
    const { protocol: name, watched, inUse } = this.options;
    const protocol = name === 'tcp' ? IPPROTO_TCP : IPPROTO_UDP;
    const families: (4 | 6)[] = [];
    const errors: string[] = [];
    for (const family of [4, 6] as const) {
      try {
        this.readers.push(nativeRaw.open(family, protocol, watched, inUse[name], (records, count) => this.onRecords(records, count)));
        families.push(family);
      } catch (err) {
        if (family === 4) throw new Error(`cannot open a raw ${name} socket (needs CAP_NET_RAW): ${(err as Error).message}`);
        errors.push(`IPv6: ${(err as Error).message}`);
      }
    }
    return { families, errors, filtered: this.readers.every((r) => r.filtered) };
  }

  /**
   * Watches `watched` from now on, on the same sockets: no packet queued or arriving meanwhile
   * is lost, as reopening would lose it. Returns whether every kernel filter is attached.
   */
  rewatch(watched: Uint8Array): boolean {
    this.options.watched.set(watched);
    return this.readers.map((r) => r.refilter()).every(Boolean);
  }

  stop(): void {
    for (const reader of this.readers.splice(0)) {
      for (let i = 0; i < this.closed.length; i++) this.closed[i]! += reader.counters[i]!;
      reader.close();
    }
  }

  /** Probe records from the native reader, in a buffer reused for every call. */
  private onRecords(records: Buffer, count: number): void {
    const size = this.readers[0]?.recordSize ?? 0;
    const { protocol, mode, isLocal4, isLocal6, onProbe } = this.options;
    const now = performance.now();
    for (let i = 0, at = 0; i < count; i++, at += size) {
      const family = records[at] === 6 ? 6 : 4;
      const flags = records[at + 1]!;
      const repeats = LE ? records.readUInt32LE(at + 4) : records.readUInt32BE(at + 4);
      // Broadcast and multicast (ff02::1 reaches every node on the link) reach a raw socket
      // too; only packets to this host's own addresses count.
      const local = family === 4 ? isLocal4(LE ? records.readUInt32LE(at + 8) : records.readUInt32BE(at + 8)) : isLocal6(records, at + 36);
      if (!local) {
        this.notLocal += repeats;
        continue;
      }
      // An IPv6 packet from an IPv4-mapped address (RFC 4291 2.5.5.2: never on the wire) is
      // forged; read as the IPv4 address it names, it would block someone else.
      if (family === 6 && isV4MappedAt(records, at + 16)) {
        this.mappedSource += repeats;
        continue;
      }
      const type = protocol === 'tcp' ? classifyTcp(flags) : 'udp';
      if (type === null) continue; // the native reader already leaves replies out
      onProbe({
        time: Date.now(),
        protocol,
        mode,
        source: addressAt(records, at + 16, family),
        port: LE ? records.readUInt16LE(at + 2) : records.readUInt16BE(at + 2),
        type,
        flags: protocol === 'tcp' ? FLAG_NAMES[flags] : undefined,
        verified: false,
        repeats,
        receivedAt: now - (LE ? records.readUInt32LE(at + 12) : records.readUInt32BE(at + 12)) / 1000,
        ifindex: LE ? records.readUInt32LE(at + 32) : records.readUInt32BE(at + 32),
        destination: formatIpAt(records, at + 36, family),
      });
    }
  }
}
