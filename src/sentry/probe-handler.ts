// What the sentry does with one probe, from a detector to the kernel set: the reverse-path
// check, the engine's decision, the response (the responder's actions on the firewall, the
// block record) and the log lines and metrics. No sockets here: the detectors that feed it
// are wired by Sentry, so this runs in unit tests on the in-memory Firewall.
import { detectedEntry, type BlockEntry } from '../blocks/entry.js';
import type { ReversePath } from '../detect/reverse-path.js';
import type { BlockRecord, Decision, Engine } from '../engine/engine.js';
import type { Probe, ProbeType } from '../engine/probe.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { classicMode } from '../policy/classic-modes.js';
import type { Protocol } from '../policy/types.js';
import type { FastPath } from '../respond/fast-path/fast-path.js';
import type { Done, Responder } from '../respond/responder.js';

/** Sources whose "already blocked" line was written, at most this many at once (a forged flood from a blocked network). */
const ALREADY_LOGGED_MAX = 10_000;
/** Detections kept for `status`. */
const RECENT_MAX = 20;

const STEALTH_NAMES: Record<string, string> = {
  syn: 'TCP SYN/Normal scan',
  fin: 'TCP FIN scan',
  null: 'TCP NULL scan',
  xmas: 'TCP XMAS scan',
};

/** PortSentry's name for what the probe was ("TCP SYN/Normal scan", "Connect"). */
function scanName(p: Pick<Probe, 'mode' | 'protocol' | 'type' | 'flags'>): string {
  if (p.mode === 'bind') return 'Connect';
  if (p.protocol === 'udp') return 'UDP scan';
  return STEALTH_NAMES[p.type] ?? `Unknown Type: TCP Packet Flags: ${p.flags}`;
}

/** Classic attackalert wording, so log watchers written for PortSentry still match. */
function alertText(p: Probe): string {
  return `attackalert: ${scanName(p)} from host: ${p.source.text}/${p.source.text} to ${p.protocol.toUpperCase()} port: ${p.port}`;
}

/** A detection as `status` shows it. */
export interface RecentDetection {
  time: number;
  source: string;
  protocol: Protocol;
  port: number;
  scan: string;
  decision: 'alert' | 'respond';
  action?: string;
}

/** Where the standalone sentry keeps its detections' blocks (HostBlocks); the agent has none. */
export interface DetectionRecord {
  recordDetection(entry: BlockEntry): Promise<void>;
  readonly size: number;
}

export interface ProbeHandlerOptions {
  engine: Engine;
  responder: Responder;
  reversePath: ReversePath;
  /** The standalone sentry's record of blocks; null in the agent. */
  record: DetectionRecord | null;
  /** The kernel fast path, once it runs. */
  fastPath: () => FastPath | null;
  logger: Logger;
  metrics: Metrics;
  /** Sees every probe not ignored, with the engine's decision (the agent reports them). */
  onDecision?: (probe: Probe, decision: Decision) => void;
}

/** A done action as a log field: "firewall nftables", "hosts-deny ALL: 198.18.0.1 : DENY". */
const doneText = (d: Done): string => `${d.action} ${d.detail}`;

export class ProbeHandler {
  private readonly alreadyLogged = new Set<string>();
  private readonly recentList: RecentDetection[] = [];
  /** Interfaces already named in a log line about spoofed probes (one line each; 0 for the fast path). */
  private readonly spoofedOn = new Set<number>();
  private readonly pending = new Set<Promise<void>>();
  private readonly debug: boolean;

  constructor(private readonly o: ProbeHandlerOptions) {
    this.debug = o.logger.isLevelEnabled('debug');
  }

  /** The last detections, oldest first. */
  get recent(): RecentDetection[] {
    return [...this.recentList];
  }

  /** A probe from a detector. */
  handle(probe: Probe): void {
    // From the packet's arrival where the kernel stamped it: the wait in the socket counts.
    const seenAt = probe.receivedAt ?? performance.now();
    if (probe.ifindex && !probe.verified && !this.o.reversePath.routesBack(probe.source.text, probe.destination, probe.ifindex)) {
      this.spoofed(probe);
      return;
    }
    const decision = this.o.engine.decide(probe);
    this.o.metrics.countProbe(probe.protocol, probe.mode, probe.type, probe.repeats);
    if (decision.kind !== 'ignored') this.o.onDecision?.(probe, decision);
    // Under a flood most probes come from a source already answered: nothing to log
    // unless debug is on, and nothing to build for it; a blocked source is said once.
    if (decision.kind === 'suppressed' && !this.debug && !(decision.blocked && this.firstAlreadyBlocked(probe.source.text))) return;
    this.carryOut(probe, decision, seenAt);
  }

  /** A probe that failed the reverse-path check: counted, never judged, logged once per interface. */
  spoofed(probe: Probe): void {
    this.o.metrics.spoofedProbes.inc({ protocol: probe.protocol }, probe.repeats ?? 1);
    const fields = { source: probe.source.text, destination: probe.destination, port: probe.port, protocol: probe.protocol, ifindex: probe.ifindex };
    const on = probe.ifindex ?? 0; // 0: the kernel fast path, which names no interface
    if (!this.spoofedOn.has(on)) {
      this.spoofedOn.add(on);
      this.o.logger.warn(fields, 'probe with a forged source (a reply would not leave by the interface it came in on): counted as spoofed, never blocked; further ones at debug level');
    } else this.o.logger.debug(fields, 'probe with a forged source: counted as spoofed');
  }

  /** A block of `source` was lifted: its next "already blocked" is said again. */
  forget(source: string): void {
    this.alreadyLogged.delete(source);
  }

  /** A network was lifted: every source's "already blocked" is said again. */
  forgetAll(): void {
    this.alreadyLogged.clear();
  }

  /** Runs `work` in the background; `settled` waits for it. */
  track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  /** Every response started so far carried out (and its lines written). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all(this.pending);
  }

  /** Carries out a decision: its log line, and for a response, the responder's actions. */
  private carryOut(probe: Probe, decision: Decision, seenAt: number): void {
    const fastPath = this.o.fastPath();
    // The kernel blocked a source the engine ignores (the sets lag a change by a second): undo it.
    if (decision.kind === 'ignored' && probe.blockedInKernel && fastPath) {
      this.track(fastPath.unblock(probe.source).catch((err: Error) => this.o.logger.error({ err: err.message }, 'kernel fast path: cannot unblock')));
    }
    if (decision.kind !== 'respond') return this.log(probe, decision);
    // The response goes first and its lines are written on the next turn: building and
    // writing them took a third of a millisecond, cold, between a probe and its block.
    const block = decision.block;
    const record = this.o.record;
    this.track(
      this.o.responder.respond(block).then(async (done) => {
        const latencyMs = performance.now() - seenAt;
        // A kernel block was in place before the sentry heard of it: not a user-space latency.
        if (!probe.blockedInKernel) this.o.metrics.blockLatency.observe(latencyMs / 1000);
        if (record && block.action === 'block') {
          await record.recordDetection(this.entryOf(block, decision.ports, decision.types));
          this.o.metrics.blockedHosts.set(record.size);
        }
        this.o.logger.info(
          { source: block.source.text, action: block.action, latencyMs, ...(probe.blockedInKernel ? { blockedInKernel: true } : {}), done: done.map(doneText) },
          'response in place',
        );
      }),
    );
    this.track(new Promise((resolve) => setImmediate(() => resolve(this.log(probe, decision)))));
  }

  private entryOf(block: BlockRecord, ports: string[], types: ProbeType[]): BlockEntry {
    const reason = block.mode === 'bind' ? `${block.protocol.toUpperCase()} connect` : scanName(block);
    return detectedEntry(block, reason, ports, types, classicMode(block.protocol, block.mode));
  }

  /** PortSentry said "already blocked" for every probe; here once per source and block, within a bound. */
  private firstAlreadyBlocked(source: string): boolean {
    return this.alreadyLogged.size < ALREADY_LOGGED_MAX && !this.alreadyLogged.has(source);
  }

  private remember(probe: Probe, decision: 'alert' | 'respond', action?: string): void {
    this.recentList.push({ time: probe.time, source: probe.source.text, protocol: probe.protocol, port: probe.port, scan: scanName(probe), decision, ...(action ? { action } : {}) });
    if (this.recentList.length > RECENT_MAX) this.recentList.shift();
  }

  /** The lines for one probe. */
  private log(probe: Probe, decision: Decision): void {
    const { logger, metrics } = this.o;
    const fields = {
      source: probe.source.text,
      port: probe.port,
      protocol: probe.protocol,
      mode: probe.mode,
      type: probe.type,
      ...(probe.flags ? { flags: probe.flags } : {}),
      ...(probe.blockedInKernel ? { blockedInKernel: true } : {}),
      verified: probe.verified,
      decision: decision.kind,
    };
    if (decision.kind === 'ignored') {
      metrics.ignoredProbes.inc({ reason: decision.reason });
      logger.debug({ ...fields, reason: decision.reason }, 'probe from ignored source');
      return;
    }
    if (decision.kind === 'suppressed' && decision.blocked && this.firstAlreadyBlocked(probe.source.text)) {
      this.alreadyLogged.add(probe.source.text);
      logger.info(fields, `attackalert: Host: ${probe.source.text}/${probe.source.text} is already blocked Ignoring`);
      return;
    }
    // Probes from a source already answered are routine under a flood: debug only.
    const level = decision.kind === 'suppressed' ? 'debug' : 'info';
    logger[level]({ ...fields, distinct: decision.distinct }, alertText(probe));
    if (decision.kind === 'alert') {
      this.remember(probe, 'alert');
      metrics.scans.inc({ protocol: probe.protocol });
      metrics.alerts.inc({ reason: decision.reason });
      logger.warn({ ...fields, reason: decision.reason, ports: decision.ports }, 'scan detected');
    } else if (decision.kind === 'respond') {
      const block = decision.block;
      const ports = decision.ports;
      this.remember(probe, 'respond', block.action);
      metrics.scans.inc({ protocol: probe.protocol });
      metrics.blocks.inc({ scope: 'node', action: block.action });
      if (!this.o.record) metrics.blockedHosts.set(this.o.engine.blocks.size);
      logger.warn(
        { ...fields, action: block.action, until: new Date(block.until).toISOString(), ports },
        block.action === 'block' ? 'scan detected: blocking' : 'scan detected: running command',
      );
    }
  }
}
