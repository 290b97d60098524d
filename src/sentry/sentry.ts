// The standalone sentry: detectors feed the engine, the engine's decisions drive the
// responder. The agent (cluster mode) reuses the same parts.
import { BindDetector } from '../detect/bind.js';
import { PortsInUse } from '../detect/listening.js';
import type { Probe } from '../detect/probe.js';
import { RawDetector, type RawStats } from '../detect/raw.js';
import { Engine, engineConfig, type Decision } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { expandPorts } from '../policy/ports.js';
import type { PolicyDocument, Protocol } from '../policy/types.js';
import type { Firewall } from '../respond/firewall/firewall.js';
import { selectFirewall } from '../respond/firewall/select.js';
import { Responder } from '../respond/responder.js';
import { parseIp } from '../net/ip.js';
import { hostAddresses } from './host-addresses.js';

const HOUSEKEEPING_MS = 1000;

const STEALTH_NAMES: Record<string, string> = {
  syn: 'SYN/Normal scan',
  fin: 'FIN scan',
  null: 'NULL scan',
  xmas: 'XMAS scan',
};

/** Classic attackalert wording, so log watchers written for PortSentry still match. */
function alertText(p: Probe): string {
  const from = `from host: ${p.source}/${p.source} to ${p.protocol.toUpperCase()} port: ${p.port}`;
  if (p.mode === 'bind') return `attackalert: Connect ${from}`;
  if (p.protocol === 'udp') return `attackalert: UDP scan ${from}`;
  const name = STEALTH_NAMES[p.type] ?? `Unknown Type: TCP Packet Flags: ${p.flags}`;
  return `attackalert: ${name} ${from}`;
}

/** Ports a protocol's mode watches: the tripwire list, or everything below the advanced limit. */
function watchedPorts(spec: PolicyDocument['spec'][Protocol]): Uint8Array {
  const watched = new Uint8Array(65536);
  if (spec.mode === 'advanced') {
    watched.fill(1, 1, spec.advancedLimit);
    for (const port of expandPorts(spec.exclude)) watched[port] = 0;
  } else for (const port of expandPorts(spec.ports)) watched[port] = 1;
  return watched;
}

export interface SentryOptions {
  /**
   * A firewall owned by the caller (the agent's shared node set): used for blocks, never set
   * up or torn down here. Without it the sentry sets up the policy's backend itself.
   */
  firewall?: Firewall | null;
  /** Sees every probe not ignored, with the engine's decision (the agent reports them). */
  onProbe?: (probe: Probe, decision: Decision) => void;
}

export class Sentry {
  private readonly engine: Engine;
  private detectors: { protocol: Protocol; detector: BindDetector }[] = [];
  private rawDetectors: { protocol: Protocol; detector: RawDetector; reported: RawStats }[] = [];
  private readonly inUse = new PortsInUse();
  private local4 = new Set<number>();
  private responder!: Responder;
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<void>>();
  private started = false;
  private readonly debug: boolean;

  constructor(
    private policy: PolicyDocument,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: SentryOptions = {},
  ) {
    this.engine = new Engine(engineConfig(policy.spec));
    this.debug = logger.isLevelEnabled('debug');
  }

  /** The engine's responses in force (the agent reports which sources it blocked). */
  isBlocked(source: string): boolean {
    return this.engine.blocks.has(source);
  }

  setProtected(cidrs: string[]): void {
    this.engine.setProtected(cidrs);
  }

  /**
   * Applies a new policy in place: tracked sources and blocks in force are kept; detectors
   * restart only for a protocol whose watch settings changed.
   */
  async reconfigure(policy: PolicyDocument): Promise<void> {
    const before = this.policy.spec;
    this.policy = policy;
    this.engine.reconfigure(engineConfig(policy.spec));
    this.responder.reconfigure(policy.spec.response, policy.spec.files);
    for (const protocol of ['tcp', 'udp'] as const) {
      if (JSON.stringify(before[protocol]) === JSON.stringify(policy.spec[protocol])) continue;
      await this.stopProtocol(protocol);
      await this.startProtocol(protocol);
    }
    this.logger.info({ policy: policy.metadata.name, tcp: policy.spec.tcp.mode, udp: policy.spec.udp.mode }, 'policy applied');
  }

  private async startProtocol(protocol: Protocol): Promise<void> {
    const mode = this.policy.spec[protocol].mode;
    if (mode === 'off') return;
    if (mode === 'stealth' || mode === 'advanced') await this.inUse.refresh();
    if (mode === 'bind') await this.startBind(protocol);
    else this.startRaw(protocol, mode);
  }

  private async stopProtocol(protocol: Protocol): Promise<void> {
    for (const mode of ['bind', 'stealth', 'advanced']) this.metrics.watchedPorts.remove({ protocol, mode });
    const binds = this.detectors.filter((d) => d.protocol === protocol);
    this.detectors = this.detectors.filter((d) => d.protocol !== protocol);
    await Promise.all(binds.map((d) => d.detector.stop()));
    this.reportRawStats();
    for (const r of this.rawDetectors.filter((d) => d.protocol === protocol)) r.detector.stop();
    this.rawDetectors = this.rawDetectors.filter((d) => d.protocol !== protocol);
  }

  get ready(): boolean {
    return this.started;
  }

  async start(): Promise<void> {
    const spec = this.policy.spec;
    this.refreshAddresses();
    // Only the raw-socket modes consult the ports-in-use table.
    const raw = (['tcp', 'udp'] as const).some((p) => spec[p].mode === 'stealth' || spec[p].mode === 'advanced');
    if (raw) await this.inUse.refresh();
    const firewall = this.options.firewall !== undefined ? this.options.firewall : await selectFirewall(spec.response.firewall);
    this.responder = new Responder({
      response: spec.response,
      files: spec.files,
      firewall,
      logger: this.logger,
      metrics: this.metrics,
    });
    await this.responder.start();

    for (const protocol of ['tcp', 'udp'] as const) await this.startProtocol(protocol);
    this.timer = setInterval(() => this.housekeeping(), HOUSEKEEPING_MS);
    this.timer.unref();
    this.started = true;
    this.logger.info(
      { policy: this.policy.metadata.name, tcp: spec.tcp.mode, udp: spec.udp.mode, firewall: firewall?.name ?? 'none' },
      'sentry ready',
    );
  }

  private async startBind(protocol: Protocol): Promise<void> {
    const spec = this.policy.spec;
    const detector = new BindDetector({
      protocol,
      ports: expandPorts(spec[protocol].ports),
      banner: protocol === 'tcp' ? spec.response.banner : '',
      onProbe: (p) => this.onProbe(p),
    });
    const report = await detector.start();
    this.detectors.push({ protocol, detector });
    this.metrics.watchedPorts.set({ protocol, mode: 'bind' }, report.bound.length);
    if (report.inUse.length)
      this.logger.warn({ protocol, ports: report.inUse }, 'ports used by a real service are not watched');
    for (const f of report.failed) this.logger.error({ protocol, port: f.port, error: f.error }, 'cannot watch port');
    this.logger.info({ protocol, mode: 'bind', ports: report.bound }, 'watching ports');
  }

  private startRaw(protocol: Protocol, mode: 'stealth' | 'advanced'): void {
    const watched = watchedPorts(this.policy.spec[protocol]);
    const detector = new RawDetector({
      protocol,
      mode,
      watched,
      inUse: this.inUse,
      isLocal4: (address) => this.local4.has(address),
      onProbe: (p) => this.onProbe(p),
    });
    const { families, errors, filtered } = detector.start();
    const reported: RawStats = { packets: 0, drops: { ...detector.stats.drops } };
    this.rawDetectors.push({ protocol, detector, reported });
    let count = 0;
    for (let port = 1; port < 65536; port++) count += watched[port]!;
    this.metrics.watchedPorts.set({ protocol, mode }, count);
    for (const e of errors) this.logger.warn({ protocol, error: e }, 'raw socket problem');
    this.logger.info(
      { protocol, mode, families, kernelFilter: filtered, ports: mode === 'stealth' ? expandPorts(this.policy.spec[protocol].ports) : count },
      'watching ports',
    );
  }

  private refreshAddresses(): void {
    const addresses = hostAddresses();
    this.engine.setOwnAddresses(addresses);
    const local4 = new Set<number>();
    for (const a of addresses) {
      const ip = parseIp(a);
      if (ip?.family === 4) local4.add(((ip.bytes[0]! << 24) | (ip.bytes[1]! << 16) | (ip.bytes[2]! << 8) | ip.bytes[3]!) >>> 0);
    }
    this.local4 = local4;
  }

  /** Raw detectors count in plain numbers (cheap per packet); metrics get the deltas. */
  private reportRawStats(): void {
    for (const { protocol, detector, reported } of this.rawDetectors) {
      const now = detector.stats;
      if (now.packets > reported.packets) this.metrics.packets.inc({ protocol }, now.packets - reported.packets);
      reported.packets = now.packets;
      for (const reason of Object.keys(now.drops) as (keyof RawStats['drops'])[]) {
        const delta = now.drops[reason] - reported.drops[reason];
        if (delta > 0) this.metrics.malformedPackets.inc({ protocol, reason }, delta);
        reported.drops[reason] = now.drops[reason];
      }
    }
  }

  private onProbe(probe: Probe): void {
    const seenAt = performance.now();
    const decision = this.engine.observe(probe);
    this.metrics.countProbe(probe.protocol, probe.mode, probe.type, probe.repeats);
    if (decision.kind !== 'ignored') this.options.onProbe?.(probe, decision);
    // Under a flood most probes come from a source already answered: nothing to log
    // unless debug is on, and nothing to build for it.
    if (decision.kind === 'suppressed' && !this.debug) return;
    this.record(probe, decision, seenAt);
  }

  private record(probe: Probe, decision: Decision, seenAt: number): void {
    if (decision.kind !== 'respond') return this.log(probe, decision);
    // The response goes first and its lines are written on the next turn: building and
    // writing them took a third of a millisecond, cold, between a probe and its block.
    const block = decision.block;
    this.track(
      this.responder.respond(block).then(() => {
        const latencyMs = performance.now() - seenAt;
        this.metrics.blockLatency.observe(latencyMs / 1000);
        this.logger.info({ source: block.source, action: block.action, latencyMs }, 'response in place');
      }),
    );
    const ports = [...decision.state.probes.keys()];
    setImmediate(() => this.log(probe, decision, ports));
  }

  /** The lines for one probe; `judged` holds the source's ports as they were when it was judged. */
  private log(probe: Probe, decision: Decision, judged?: string[]): void {
    const fields = {
      source: probe.source,
      port: probe.port,
      protocol: probe.protocol,
      mode: probe.mode,
      type: probe.type,
      ...(probe.flags ? { flags: probe.flags } : {}),
      verified: probe.verified,
      decision: decision.kind,
    };
    if (decision.kind === 'ignored') {
      this.metrics.ignoredProbes.inc({ reason: decision.reason });
      this.logger.debug({ ...fields, reason: decision.reason }, 'probe from ignored source');
      return;
    }
    // Probes from a source already answered are routine under a flood: debug only.
    const level = decision.kind === 'suppressed' ? 'debug' : 'info';
    const ports = judged ?? [...decision.state.probes.keys()];
    this.logger[level]({ ...fields, distinct: ports.length }, alertText(probe));
    if (decision.kind === 'alert') {
      this.metrics.scans.inc({ protocol: probe.protocol });
      this.metrics.alerts.inc({ reason: decision.reason });
      this.logger.warn({ ...fields, reason: decision.reason, ports }, 'scan detected');
    } else if (decision.kind === 'respond') {
      const block = decision.block;
      this.metrics.scans.inc({ protocol: probe.protocol });
      this.metrics.blocks.inc({ scope: 'node', action: block.action });
      this.metrics.blockedHosts.set(this.engine.blocks.size);
      this.logger.warn(
        { ...fields, action: block.action, until: new Date(block.until).toISOString(), ports },
        block.action === 'block' ? 'scan detected: blocking' : 'scan detected: running command',
      );
    }
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private housekeeping(): void {
    this.refreshAddresses();
    if (this.rawDetectors.length) void this.inUse.refresh();
    this.reportRawStats();
    for (const block of this.engine.expire(Date.now())) {
      this.metrics.unblocks.inc({ reason: 'expired' });
      this.logger.info({ source: block.source, action: block.action }, 'block expired: lifting');
      this.track(this.responder.lift(block));
    }
    this.metrics.blockedHosts.set(this.engine.blocks.size);
    this.metrics.trackedSources.set(this.engine.trackedSources);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.started = false;
    await Promise.all(this.detectors.map((d) => d.detector.stop()));
    for (const { detector } of this.rawDetectors) detector.stop();
    this.reportRawStats();
    await Promise.all(this.pending);
    if (!this.responder) return;
    for (const block of this.engine.liftAll()) {
      this.metrics.unblocks.inc({ reason: 'shutdown' });
      await this.responder.lift(block, { keepFirewall: true });
    }
    if (this.options.firewall !== undefined) {
      this.logger.info('sentry stopped; the node firewall set is left to its owner');
      return;
    }
    await this.responder.stop();
    this.logger.info('sentry stopped; firewall entries removed');
  }
}
