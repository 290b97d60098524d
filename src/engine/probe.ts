// What every detector reports and the engine judges: one packet or connection aimed at a
// watched port.
import type { Address } from '../net/address.js';
import type { DetectMode, Protocol } from '../policy/types.js';

/** connect: completed TCP handshake (bind mode); udp: a datagram; the rest: stealth TCP flag sets. */
export type ProbeType = 'connect' | 'udp' | 'syn' | 'fin' | 'null' | 'xmas' | 'oddball';

/** Every probe type, in the order the tracker keeps them as bits. */
export const PROBE_TYPES: readonly ProbeType[] = ['connect', 'udp', 'syn', 'fin', 'null', 'xmas', 'oddball'];

export interface Probe {
  /** Milliseconds since the epoch. */
  time: number;
  protocol: Protocol;
  mode: Exclude<DetectMode, 'off'>;
  /** The source address, parsed once by the reader (IPv4-mapped IPv6 already IPv4). */
  source: Address;
  port: number;
  type: ProbeType;
  /** TCP flags as letters (e.g. "SF"), for stealth probes. */
  flags?: string;
  /** The source is proven: it completed a TCP handshake. */
  verified: boolean;
  /** Identical packets this probe stands for (the raw reader folds a flood); 1 when absent. */
  repeats?: number;
  /** performance.now() when the packet reached the host, by the kernel's stamp, when known. */
  receivedAt?: number;
  /** The kernel fast path saw it and has already blocked the source (response.kernelFastPath). */
  blockedInKernel?: boolean;
  /** The kernel fast path saw it and its block budget refused the source: the kernel's word stands. */
  refusedInKernel?: boolean;
  /** The interface it came in on (raw sockets, bind-mode UDP), for the reverse-path check; 0 or absent when unknown. */
  ifindex?: number;
  /** The address it was sent to (raw sockets, bind-mode UDP). */
  destination?: string;
}
