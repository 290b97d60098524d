// The kernel fast path as a capability (response.kernelFastPath): a firewall backend that
// can trap a probe to a tripwire port in the kernel, block its source at that first packet
// and tell the sentry afterwards offers `Firewall.fastPath`. The sentry asks for it and
// never needs to know which backend it has.
import type { Address } from '../../net/address.js';
import type { Cidr } from '../../net/ip.js';
import type { Probe } from '../../engine/probe.js';
import type { Protocol } from '../../policy/types.js';

export interface FastPathSettings {
  /** The raw-socket protocols it takes over, with their mode. */
  modes: Partial<Record<Protocol, 'stealth' | 'advanced'>>;
  /** How long the kernel keeps a source it blocked. */
  timeoutMs: number;
  /** The circuit breaker (response.maxBlocksPerMinute), split as fastPathBudgets says. */
  perMinute: number;
  /** Each probe the kernel trapped: blocked there (blockedInKernel) or refused by its budget (refusedInKernel). */
  onProbe: (probe: Probe) => void;
  /** A probe the kernel found forged (it would not route back by its interface): never a detection. */
  onSpoofed: (probe: Probe) => void;
  /** Reports the kernel could not deliver (the reader's queue was full). */
  onLoss: () => void;
}

/** What the kernel must match: the watched ports not in use, by protocol, and the sources never trapped. */
export interface FastPathTargets {
  /** 1 for each watched port (indexed by port number). */
  ports: Partial<Record<Protocol, Uint8Array>>;
  ignored: readonly Cidr[];
}

export interface FastPath {
  /** The protocols its rules trap (those of the settings in force). */
  readonly protocols: readonly Protocol[];
  /** Installs the rules (ports and ignored sets empty) and starts reading what they report. */
  start(): Promise<void>;
  /**
   * New settings (a policy edit): the rules replaced in one transaction, so a port trapped
   * before and after is never untrapped between; the reader and the sets' elements stay.
   */
  reconfigure(settings: FastPathSettings): Promise<void>;
  /**
   * Brings the kernel's ports and ignored sources in line with `targets`, ignored sources
   * first (no port is trapped before its exceptions are in place); nothing when unchanged.
   * One at a time: a call while one runs waits for it and applies the latest targets.
   */
  sync(targets: FastPathTargets): Promise<void>;
  /** Lifts a kernel block the sentry does not stand behind (a source the engine ignores). */
  unblock(source: Address): Promise<void>;
  /** Stops reading; the rules stay with the firewall's table. */
  stop(): void;
  /** Stops reading and removes its rules and sets (detection stops here; the blocked sets stay). */
  remove(): Promise<void>;
}
