// The standalone sentry: detectors feed the engine, the engine's decisions drive the
// responder. The agent (cluster mode) reuses the same parts.
import { BindDetector, type BindReport } from '../detect/bind.js';
import type { BlockEntry } from '../blocks/entry.js';
import { PortsInUse } from '../detect/listening.js';
import type { Probe } from '../engine/probe.js';
import { RawDetector, type RawStats } from '../detect/raw.js';
import { KernelReversePath, type ReversePath } from '../detect/reverse-path.js';
import { LocalAddresses } from '../detect/local-addresses.js';
import { Engine, engineConfig, type Decision } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CompiledPolicy, CompiledProtocol } from '../policy/compiled.js';
import type { ProtocolSpec, Protocol } from '../policy/types.js';
import type { Firewall } from '../respond/firewall/firewall.js';
import type { FastPath, FastPathSettings, FastPathTargets } from '../respond/fast-path/fast-path.js';
import { selectFirewall } from '../respond/firewall/select.js';
import { DEFAULT_INSTANCE, firewallNames } from '../respond/firewall/owner.js';
import { Responder, blockedOf } from '../respond/responder.js';
import { isNetwork, type AddressOrNetwork } from '../net/address.js';
import type { RouteMark } from '../respond/route.js';
import { HostBlocks } from './host-blocks.js';
import { ProbeHandler, type RecentDetection } from './probe-handler.js';

export type { RecentDetection } from './probe-handler.js';
import { statePaths } from './state-paths.js';
import { parseCidr } from '../net/ip.js';
import type { NeverBlocked } from '../blocks/target.js';
import type { ProtectedSet } from '../cluster/protected-set.js';
import { hostAddresses } from './host-addresses.js';
import { HOST_RESOLV_CONFS, hostProtectedSet } from './host-facts.js';

const HOUSEKEEPING_MS = 1000;
/** The standalone sentry reads its host's gateways and resolvers again this often. */
const HOST_FACTS_MS = 10_000;

export interface SentryStatus {
  policy: string;
  firewall: string;
  modes: Record<Protocol, string>;
  /** Ports watched, by protocol (advanced mode: how many). */
  watched: Record<Protocol, number[] | number>;
  /** Ports of the policy skipped as used by a real service. */
  inUse: Record<Protocol, number[]>;
  kernelFastPath: Protocol[];
  trackedSources: number;
  blocks: number;
  recent: RecentDetection[];
}

/** What the fast path's rules are made of, as text: an edit that changes it replaces them. */
const fastPathKey = (s: FastPathSettings): string => JSON.stringify([s.modes, s.timeoutMs, s.perMinute]);

/** Ports a protocol's mode watches: the tripwire list, or everything below the advanced limit. */
function watchedPorts(spec: ProtocolSpec, ports: CompiledProtocol): Uint8Array {
  const watched = new Uint8Array(65536);
  if (spec.mode === 'advanced') {
    watched.fill(1, 1, spec.advancedLimit);
    for (const port of ports.exclude) watched[port] = 0;
  } else for (const port of ports.ports) watched[port] = 1;
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
  /** How the caller's routes are marked (the agent's instance); the standalone sentry's own otherwise. */
  routeMark?: RouteMark;
  /** Standalone: remove everything the sentry owns when it stops (by default blocks stay in place). */
  flushOnExit?: boolean;
  /** Standalone: where the block record and lock files go, instead of next to the history file. */
  stateDir?: string;
  /** The reverse-path check of unverified probes; the kernel's routing unless given. */
  reversePath?: ReversePath;
  /**
   * Standalone: the resolv.conf files whose nameservers are protected (the host's own and
   * systemd-resolved's unless given). The agent gives its protected set with setProtected.
   */
  resolvConfs?: string[];
}

/** How many ports a watched-ports table (1 per watched port, by number) watches. */
function countWatched(watched: Uint8Array): number {
  let count = 0;
  for (let port = 1; port < 65536; port++) count += watched[port]!;
  return count;
}

/** A protocol's detectors, with the raw readers' counts already in the metrics. */
interface BindWatch {
  protocol: Protocol;
  detector: BindDetector;
}
interface RawWatch {
  protocol: Protocol;
  mode: 'stealth' | 'advanced';
  detector: RawDetector;
  reported: RawStats;
}

export class Sentry {
  private readonly engine: Engine;
  private detectors: BindWatch[] = [];
  private rawDetectors: RawWatch[] = [];
  private readonly inUse = new PortsInUse();
  private local = new LocalAddresses([]);
  private readonly reversePath: ReversePath;
  /** A probe's way from a detector to its response; made at start, once the responder is. */
  private probes: ProbeHandler | null = null;
  /** The kernel fast path, when on (its backend's capability). */
  private kernel: FastPath | null = null;
  private responder!: Responder;
  /** The firewall blocks go to (the agent's shared node set, or the standalone's own backend). */
  private firewall: Firewall | null = null;
  /** The standalone sentry's blocks, kept across restarts (null in the agent, which shares its node set). */
  private host: HostBlocks | null = null;
  private firewallName = 'none';
  private readonly bindReports: Partial<Record<Protocol, BindReport>> = {};
  private timer: NodeJS.Timeout | undefined;
  private readonly pending = new Set<Promise<void>>();
  private started = false;
  /** Evictions already counted in the metrics (the engine keeps a running total). */
  private evictedReported = 0;
  /** Never blocked, in the engine and in the fast path's ignore sets (setProtected). */
  private protectedList: string[] = [];
  /** The standalone sentry's own protected set (its host's), read at start and every HOST_FACTS_MS. */
  private hostProtected: ProtectedSet | null = null;
  private hostFactsAt = 0;

  constructor(
    private policy: CompiledPolicy,
    private readonly logger: Logger,
    private readonly metrics: Metrics,
    private readonly options: SentryOptions = {},
  ) {
    this.engine = new Engine(engineConfig(policy));
    this.reversePath = options.reversePath ?? new KernelReversePath();
  }

  /** The engine's responses in force (the agent reports which sources it blocked). */
  isBlocked(source: string): boolean {
    return this.engine.blocks.has(source);
  }

  /** Addresses and CIDRs never counted or blocked: in the engine, and the fast path's ignore sets. */
  setProtected(cidrs: string[]): void {
    this.protectedList = cidrs;
    this.engine.setProtected(cidrs);
    if (this.kernel) void this.syncKernel();
  }

  /** Standalone: the always-protected ranges with the host's gateways, resolvers and addresses, when they changed. */
  private async refreshHostProtected(): Promise<void> {
    this.hostFactsAt = Date.now();
    const next = await hostProtectedSet(this.options.resolvConfs ?? HOST_RESOLV_CONFS);
    const before = this.hostProtected;
    if (before && JSON.stringify(before.facts) === JSON.stringify(next.facts)) return;
    this.hostProtected = next;
    this.setProtected(next.all());
    const { gateways, dns } = next.facts;
    this.logger.info({ gateways, resolvers: dns }, 'protected: the always-protected ranges, this host\'s addresses, gateways and resolvers');
  }

  /**
   * Applies a new policy in place: tracked sources and blocks in force are kept; detectors
   * restart only for a protocol whose watch settings changed.
   */
  async reconfigure(policy: CompiledPolicy): Promise<void> {
    const before = this.policy.spec;
    const fastBefore = [...(this.kernel?.protocols ?? [])];
    const settingsBefore = this.kernel ? fastPathKey(this.fastPathSettings(fastBefore)) : '';
    this.policy = policy;
    this.engine.reconfigure(engineConfig(policy));
    this.responder.reconfigure(policy.spec.response, policy.spec.files);
    const fast = this.fastProtocols();
    // A protocol leaving the fast path is watched by its detector before the rules go.
    for (const protocol of fastBefore)
      if (!fast.includes(protocol)) {
        this.clearWatched(protocol);
        await this.startProtocol(protocol);
      }
    await this.reconfigureKernel(fast, settingsBefore);
    for (const protocol of ['tcp', 'udp'] as const) {
      if (fastBefore.includes(protocol)) continue;
      // Joining the fast path: its rules trap the ports now, the detector goes.
      if (fast.includes(protocol)) await this.stopProtocol(protocol);
      else if (JSON.stringify(before[protocol]) !== JSON.stringify(policy.spec[protocol])) await this.restartProtocol(protocol);
    }
    this.logger.info({ policy: policy.name, tcp: policy.spec.tcp.mode, udp: policy.spec.udp.mode }, 'policy applied');
  }

  private async startProtocol(protocol: Protocol): Promise<void> {
    const mode = this.policy.spec[protocol].mode;
    if (mode === 'off') return;
    if (mode === 'stealth' || mode === 'advanced') await this.inUse.refresh();
    if (mode === 'bind') await this.startBind(protocol);
    else this.startRaw(protocol, mode);
  }

  /**
   * Applies a protocol's new watch settings. The raw readers of an unchanged mode keep their
   * sockets and change the ports they watch in place; a new raw mode's readers open before the
   * old detectors close. Either way no probe falls between the two. Listeners (bind mode)
   * close first, as the new ones take the same ports.
   */
  private async restartProtocol(protocol: Protocol): Promise<void> {
    const mode = this.policy.spec[protocol].mode;
    if (mode !== 'stealth' && mode !== 'advanced') {
      await this.stopProtocol(protocol);
      await this.startProtocol(protocol);
      return;
    }
    const same = this.rawDetectors.find((r) => r.protocol === protocol && r.mode === mode);
    // The sentry's own listeners (bind mode before) hold the ports until they close: read the
    // ports in use after, or every tripwire would look like a service's.
    const old = same ? null : this.takeDetectors(protocol);
    if (old) await this.stopDetectors({ binds: old.binds, raws: [] });
    await this.inUse.refresh();
    if (same) {
      const watched = watchedPorts(this.policy.spec[protocol], this.policy[protocol]);
      const filtered = same.detector.rewatch(watched);
      const count = countWatched(watched);
      this.metrics.watchedPorts.set({ protocol, mode }, count);
      this.logger.info({ protocol, mode, kernelFilter: filtered, ports: mode === 'stealth' ? this.policy[protocol].ports : count, inPlace: true }, 'watching ports');
      return;
    }
    this.startRaw(protocol, mode);
    await this.stopDetectors({ binds: [], raws: old!.raws });
  }

  private async stopProtocol(protocol: Protocol): Promise<void> {
    await this.stopDetectors(this.takeDetectors(protocol));
  }

  private clearWatched(protocol: Protocol): void {
    for (const mode of ['bind', 'stealth', 'advanced']) this.metrics.watchedPorts.remove({ protocol, mode });
  }

  /** Removes the protocol's detectors from the sentry's lists (and its watched-ports gauge); stopDetectors stops them. */
  private takeDetectors(protocol: Protocol): { binds: BindWatch[]; raws: RawWatch[] } {
    this.clearWatched(protocol);
    const binds = this.detectors.filter((d) => d.protocol === protocol);
    const raws = this.rawDetectors.filter((d) => d.protocol === protocol);
    this.detectors = this.detectors.filter((d) => d.protocol !== protocol);
    this.rawDetectors = this.rawDetectors.filter((d) => d.protocol !== protocol);
    return { binds, raws };
  }

  private async stopDetectors({ binds, raws }: { binds: BindWatch[]; raws: RawWatch[] }): Promise<void> {
    for (const r of raws) {
      r.detector.stop();
      this.reportRawStatsOf(r);
    }
    await Promise.all(binds.map((d) => d.detector.stop()));
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
    const shared = this.options.firewall !== undefined;
    if (!shared) await this.refreshHostProtected();
    const paths = statePaths(spec.files, this.options.stateDir);
    const names = firewallNames(shared ? { kind: 'agent', instance: DEFAULT_INSTANCE } : { kind: 'standalone', stateDir: paths.dir });
    const firewall = shared ? this.options.firewall! : await selectFirewall(spec.response.firewall, names);
    this.firewall = firewall;
    this.firewallName = firewall?.name ?? 'none';
    // The fast path takes over the raw-socket protocols whose action is block.
    const fast = this.fastProtocols();
    const fastPath = fast.length ? firewall!.fastPath!(this.fastPathSettings(fast)) : undefined;
    this.responder = new Responder({
      response: spec.response,
      files: spec.files,
      firewall,
      logger: this.logger,
      metrics: this.metrics,
      routeMark: this.options.routeMark ?? { metric: names.routeMetric },
      lockDir: paths.dir,
    });
    await this.responder.start();
    if (!shared) {
      this.host = new HostBlocks({ response: spec.response, paths, names, firewall, responder: this.responder, engine: this.engine, logger: this.logger, metrics: this.metrics });
      const plan = await this.host.start();
      this.logger.info(
        {
          record: paths.record,
          kept: plan.keep.length - plan.adopted.length,
          adopted: plan.adopted.map((e) => e.target.text),
          lifted: plan.lifted.length,
          restored: { kernel: plan.kernel.add.length, routes: plan.routes.add.length, hostsDeny: plan.hostsDeny.add.length },
          removed: { kernel: plan.kernel.remove.map((k) => k.target.text), routes: plan.routes.remove.map((r) => r.text), hostsDeny: plan.hostsDeny.remove },
        },
        'blocks from the record reconciled',
      );
      for (const e of plan.lifted) this.logger.info({ source: e.target.text, until: new Date(e.until!).toISOString() }, 'block expired while the sentry was stopped: lifted');
      this.metrics.blockedHosts.set(this.host.size);
    }
    this.probes = new ProbeHandler({
      engine: this.engine,
      responder: this.responder,
      reversePath: this.reversePath,
      record: this.host,
      fastPath: () => this.kernel,
      logger: this.logger,
      metrics: this.metrics,
      ...(this.options.onProbe ? { onDecision: this.options.onProbe } : {}),
    });
    if (fastPath) await this.startKernel(fastPath);

    for (const protocol of ['tcp', 'udp'] as const) if (!fast.includes(protocol)) await this.startProtocol(protocol);
    this.timer = setInterval(() => this.housekeeping(), HOUSEKEEPING_MS);
    this.timer.unref();
    this.started = true;
    this.logger.info(
      { policy: this.policy.name, tcp: spec.tcp.mode, udp: spec.udp.mode, firewall: firewall?.name ?? 'none' },
      'sentry ready',
    );
  }

  private async startBind(protocol: Protocol): Promise<void> {
    const spec = this.policy.spec;
    const detector = new BindDetector({
      protocol,
      ports: [...this.policy[protocol].ports],
      banner: protocol === 'tcp' ? spec.response.banner : '',
      isLocal: (destination) => this.local.has(destination),
      onProbe: (p) => this.probes?.handle(p),
      onNotLocal: () => this.metrics.malformedPackets.inc({ protocol, reason: 'not-local' }),
    });
    const report = await detector.start();
    this.bindReports[protocol] = report;
    this.detectors.push({ protocol, detector });
    this.metrics.watchedPorts.set({ protocol, mode: 'bind' }, report.bound.length);
    if (report.inUse.length)
      this.logger.warn({ protocol, ports: report.inUse }, 'ports used by a real service are not watched');
    const privileged = report.failed.filter((f) => (f.error === 'EACCES' || f.error === 'EPERM') && f.port < 1024);
    for (const f of report.failed) if (!privileged.includes(f)) this.logger.error({ protocol, port: f.port, error: f.error }, 'cannot watch port');
    if (privileged.length)
      this.logger.error(
        { protocol, ports: privileged.map((f) => f.port) },
        'cannot watch ports below 1024 in bind mode without CAP_NET_BIND_SERVICE: use stealth or advanced mode (raw sockets, CAP_NET_RAW), or grant the capability',
      );
    this.logger.info({ protocol, mode: 'bind', ports: report.bound }, 'watching ports');
  }

  private startRaw(protocol: Protocol, mode: 'stealth' | 'advanced'): void {
    const watched = watchedPorts(this.policy.spec[protocol], this.policy[protocol]);
    const detector = new RawDetector({
      protocol,
      mode,
      watched,
      inUse: this.inUse,
      isLocal4: (address) => this.local.has4(address),
      isLocal6: (bytes, at) => this.local.has6(bytes, at),
      onProbe: (p) => this.probes?.handle(p),
    });
    const { families, errors, filtered } = detector.start();
    const reported: RawStats = { packets: 0, drops: { ...detector.stats.drops } };
    this.rawDetectors.push({ protocol, mode, detector, reported });
    const count = countWatched(watched);
    this.metrics.watchedPorts.set({ protocol, mode }, count);
    for (const e of errors) this.logger.warn({ protocol, error: e }, 'raw socket problem');
    this.logger.info(
      { protocol, mode, families, kernelFilter: filtered, ports: mode === 'stealth' ? this.policy[protocol].ports : count },
      'watching ports',
    );
  }

  /**
   * The raw-socket protocols the kernel fast path takes over: stealth or advanced with action
   * block, when the policy asks for it. Standalone, a firewall without one is an error; the
   * agent's node set may be iptables on some nodes of a policy: the raw-socket path runs there.
   */
  private fastProtocols(): Protocol[] {
    const spec = this.policy.spec;
    if (!spec.response.kernelFastPath) return [];
    const fast = (['tcp', 'udp'] as const).filter((p) => (spec[p].mode === 'stealth' || spec[p].mode === 'advanced') && spec.response[p] === 'block');
    if (!fast.length || this.firewall?.fastPath) return fast;
    const name = this.firewall?.name ?? 'none';
    if (this.options.firewall === undefined) throw new Error(`response.kernelFastPath needs nftables, and the firewall here is ${name}`);
    this.logger.warn({ firewall: name }, 'response.kernelFastPath needs the nftables backend: using the raw-socket path on this node');
    return [];
  }

  /** Brings the fast path in line with a policy edit: started, its rules replaced, or removed. */
  private async reconfigureKernel(fast: Protocol[], settingsBefore: string): Promise<void> {
    const kernel = this.kernel;
    if (!fast.length) {
      if (!kernel) return;
      this.kernel = null;
      await kernel.remove();
      this.logger.info('kernel fast path off: its rules removed');
      return;
    }
    const settings = this.fastPathSettings(fast);
    if (!kernel) return this.startKernel(this.firewall!.fastPath!(settings));
    if (fastPathKey(settings) !== settingsBefore) await kernel.reconfigure(settings);
    await this.syncKernel();
    this.reportKernelPorts();
  }

  private fastPathSettings(protocols: readonly Protocol[]): FastPathSettings {
    const spec = this.policy.spec;
    return {
      modes: Object.fromEntries(protocols.map((p) => [p, spec[p].mode])),
      timeoutMs: this.policy.durationMs,
      perMinute: spec.response.maxBlocksPerMinute,
      onProbe: (p) => this.probes?.handle(p),
      onSpoofed: (p) => this.probes?.spoofed(p),
      onLoss: () => this.logger.warn('kernel fast path: log messages lost (the sources are blocked all the same)'),
    };
  }

  private async startKernel(fastPath: FastPath): Promise<void> {
    await fastPath.start();
    this.kernel = fastPath;
    await this.syncKernel();
    this.reportKernelPorts();
  }

  private reportKernelPorts(): void {
    const spec = this.policy.spec;
    for (const protocol of this.kernel?.protocols ?? []) {
      const mode = spec[protocol].mode;
      const watched = watchedPorts(spec[protocol], this.policy[protocol]);
      const count = countWatched(watched);
      this.clearWatched(protocol);
      this.metrics.watchedPorts.set({ protocol, mode }, count);
      this.logger.info(
        { protocol, mode, kernelFastPath: true, ports: mode === 'stealth' ? this.policy[protocol].ports : count },
        'watching ports',
      );
    }
  }

  /**
   * Brings the fast path's sets in line with the watched ports not in use and the ignored
   * addresses (the policy's, this host's and the protected ones).
   */
  private async syncKernel(): Promise<void> {
    const kernel = this.kernel;
    if (!kernel) return;
    const spec = this.policy.spec;
    const ignored = [...this.policy.ignore];
    for (const text of [...hostAddresses(), ...this.protectedList]) {
      const cidr = parseCidr(text);
      if (cidr) ignored.push(cidr);
    }
    const ports: FastPathTargets['ports'] = {};
    for (const protocol of kernel.protocols) {
      const watched = watchedPorts(spec[protocol], this.policy[protocol]);
      const inUse = this.inUse[protocol];
      for (let port = 0; port < 65536; port++) if (inUse[port]) watched[port] = 0;
      ports[protocol] = watched;
    }
    try {
      await kernel.sync({ ports, ignored });
    } catch (err) {
      this.metrics.actionErrors.inc({ action: 'kernel-fast-path' });
      this.logger.error({ err: (err as Error).message }, 'kernel fast path: cannot update its sets');
    }
  }

  private refreshAddresses(): void {
    const addresses = hostAddresses();
    this.engine.setOwnAddresses(addresses);
    this.local = new LocalAddresses(addresses);
  }

  /** Raw detectors count in plain numbers (cheap per packet); metrics get the deltas. */
  private reportRawStats(): void {
    for (const r of this.rawDetectors) this.reportRawStatsOf(r);
  }

  private reportRawStatsOf({ protocol, detector, reported }: RawWatch): void {
    const now = detector.stats;
    if (now.packets > reported.packets) this.metrics.packets.inc({ protocol }, now.packets - reported.packets);
    reported.packets = now.packets;
    for (const reason of Object.keys(now.drops) as (keyof RawStats['drops'])[]) {
      const delta = now.drops[reason] - reported.drops[reason];
      if (delta > 0) this.metrics.malformedPackets.inc({ protocol, reason }, delta);
      reported.drops[reason] = now.drops[reason];
    }
  }

  private track(work: Promise<void>): void {
    this.pending.add(work);
    void work.finally(() => this.pending.delete(work));
  }

  private housekeeping(): void {
    this.refreshAddresses();
    if (this.hostProtected && Date.now() - this.hostFactsAt >= HOST_FACTS_MS)
      this.track(this.refreshHostProtected().catch((err: Error) => this.logger.error({ err: err.message }, 'cannot read the host\'s gateways and resolvers')));
    if (this.kernel) void this.inUse.refresh().then(() => this.syncKernel());
    else if (this.rawDetectors.length) void this.inUse.refresh();
    this.reportRawStats();
    const now = Date.now();
    const expired = this.engine.expire(now);
    for (const block of expired) {
      this.probes?.forget(block.source.text);
      if (block.action === 'command') this.track(this.responder.runUnblockCommand(blockedOf(block)));
      else if (!this.host) this.track(this.responder.lift(blockedOf(block)));
      else continue;
      this.metrics.unblocks.inc({ reason: 'expired' });
      this.logger.info({ source: block.source.text, action: block.action }, 'block expired: lifting');
    }
    if (this.host)
      this.track(
        this.host.expire(now, expired).then((lifted) => {
          for (const e of lifted) {
            this.probes?.forget(e.target.text);
            this.metrics.unblocks.inc({ reason: 'expired' });
            this.logger.info({ source: e.target.text, action: 'block', origin: e.origin }, 'block expired: lifting');
          }
        }),
      );
    this.metrics.blockedHosts.set(this.host ? this.host.size : this.engine.blocks.size);
    this.metrics.trackedSources.set(this.engine.trackedSources);
    const evicted = this.engine.evictedSources;
    if (evicted > this.evictedReported) this.metrics.evictedSources.inc(evicted - this.evictedReported);
    this.evictedReported = evicted;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.started = false;
    this.reversePath.close();
    await Promise.all(this.detectors.map((d) => d.detector.stop()));
    for (const { detector } of this.rawDetectors) detector.stop();
    // The agent's detection stops with its rules; the standalone's stay in force while it is down.
    if (this.kernel && this.options.firewall !== undefined)
      await this.kernel.remove().catch((err: Error) => this.logger.error({ err: err.message }, 'kernel fast path: cannot remove its rules'));
    else this.kernel?.stop();
    this.reportRawStats();
    await Promise.all(this.pending);
    await this.probes?.settled();
    if (!this.responder) return;
    if (!this.host) {
      for (const block of this.engine.liftAll()) {
        this.metrics.unblocks.inc({ reason: 'shutdown' });
        await this.responder.lift(blockedOf(block), { keepFirewall: true });
      }
      this.logger.info('sentry stopped; the node firewall set is left to its owner');
      return;
    }
    if (this.options.flushOnExit) {
      const count = this.host.size;
      const removed = await this.host.flush();
      this.metrics.unblocks.inc({ reason: 'shutdown' }, count);
      this.logger.info({ lifted: count, ...removed }, 'sentry stopped; everything it owned removed (--flush-on-exit)');
      return;
    }
    await this.host.record.settled();
    this.logger.info({ blocks: this.host.size }, 'sentry stopped; blocks left in place (the next start keeps them)');
  }

  /** The standalone sentry's blocks in force (empty in the agent). */
  blocksInForce(): BlockEntry[] {
    return this.host?.list() ?? [];
  }

  /** An admin's block, checked by the caller. */
  async block(target: AddressOrNetwork, until: number | null, reason: string): Promise<BlockEntry> {
    if (!this.host) throw new Error('admin blocks are for the standalone sentry');
    const entry = await this.host.block(target, until, reason);
    this.metrics.blocks.inc({ scope: 'node', action: 'manual' });
    this.metrics.blockedHosts.set(this.host.size);
    this.logger.warn({ source: target.text, reason, until: until === null ? null : new Date(until).toISOString(), origin: 'manual' }, 'blocked by an admin');
    return entry;
  }

  /** Lifts a block of exactly `target` and resets the source's trigger state. */
  async unblock(target: AddressOrNetwork): Promise<BlockEntry | null> {
    if (!this.host) throw new Error('admin unblocks are for the standalone sentry');
    const entry = await this.host.unblock(target);
    const address = target.text;
    if (isNetwork(target)) this.probes?.forgetAll();
    else this.probes?.forget(address);
    if (entry) {
      this.metrics.unblocks.inc({ reason: 'admin' });
      this.metrics.blockedHosts.set(this.host.size);
    }
    this.logger.info({ source: address, lifted: entry !== null }, entry ? 'unblocked by an admin' : 'unblock: not blocked; its trigger state reset');
    return entry;
  }

  /**
   * The agent's counterpart of an admin's unblock: the cluster lifted `address` (its
   * BlockedHost was deleted), so this node's own block of it goes too, and the source's
   * next probe is judged afresh. Returns whether a block was lifted.
   */
  async release(address: string): Promise<boolean> {
    if (this.host) throw new Error('the standalone sentry lifts blocks with unblock');
    const block = this.engine.release(address);
    this.probes?.forget(address);
    if (!block) return false;
    if (block.action === 'command') await this.responder.runUnblockCommand(blockedOf(block));
    else await this.responder.lift(blockedOf(block));
    this.metrics.unblocks.inc({ reason: 'cluster' });
    this.metrics.blockedHosts.set(this.engine.blocks.size);
    this.logger.info({ source: address, action: block.action }, 'its BlockedHost was deleted: lifting the node\'s own block too');
    return true;
  }

  /** The host's own addresses, the policy's ignore list and the protected set: never blocked. */
  neverBlocked(): NeverBlocked {
    return { own: hostAddresses(), ignore: this.policy.spec.ignore, ...(this.hostProtected ? { protected: this.hostProtected } : {}) };
  }

  status(): SentryStatus {
    const spec = this.policy.spec;
    const watched = {} as SentryStatus['watched'];
    const inUse = {} as SentryStatus['inUse'];
    for (const protocol of ['tcp', 'udp'] as const) {
      const mode = spec[protocol].mode;
      const bind = this.bindReports[protocol];
      if (mode === 'bind' && bind) {
        watched[protocol] = bind.bound;
        inUse[protocol] = bind.inUse;
        continue;
      }
      const ports = mode === 'off' ? new Uint8Array(65536) : watchedPorts(spec[protocol], this.policy[protocol]);
      const busy = this.inUse[protocol];
      const skipped: number[] = [];
      const open: number[] = [];
      for (let port = 1; port < 65536; port++) if (ports[port]) (busy[port] ? skipped : open).push(port);
      watched[protocol] = mode === 'advanced' ? open.length : open;
      inUse[protocol] = skipped;
    }
    return {
      policy: this.policy.name,
      firewall: this.firewallName,
      modes: { tcp: spec.tcp.mode, udp: spec.udp.mode },
      watched,
      inUse,
      kernelFastPath: [...(this.kernel?.protocols ?? [])],
      trackedSources: this.engine.trackedSources,
      blocks: this.host?.size ?? this.engine.blocks.size,
      recent: this.probes?.recent ?? [],
    };
  }
}
