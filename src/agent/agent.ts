// The node agent: the standalone sentry's detectors and engine, with its policy from the
// operator (one ConfigMap per node), every BlockedHost enforced in the node firewall set,
// detections reported to the operator, and the cluster's own addresses protected.
import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import type { KubernetesObject, V1ConfigMap } from '@kubernetes/client-node';
import type { Decision } from '../engine/engine.js';
import type { Probe } from '../engine/probe.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { formatProblems, validateSpec } from '../policy/validate.js';
import { compilePolicy } from '../policy/compiled.js';
import { describeRefusals, refusalsOf } from '../policy/node-allowances.js';
import { BlockSet } from '../respond/firewall/block-set.js';
import type { Firewall } from '../respond/firewall/firewall.js';
import type { RouteMark } from '../respond/route.js';
import { Sentry } from '../sentry/sentry.js';
import { ClusterFacts } from '../k8s/cluster-facts.js';
import type { ApiConnection } from '../k8s/api-connection.js';
import { describeError } from '../k8s/api-errors.js';
import { customPath, PLURALS } from '../k8s/api-paths.js';
import { Watched } from '../k8s/watched.js';
import { leanBlockedHost, nodePolicyConfigMapName, type BlockedHostObject, type EffectivePolicy } from '../k8s/objects.js';
import { canonicalAddress } from '../net/ip.js';
import { emptyFacts, isAlwaysProtected, protectedChange, ProtectedSet } from '../cluster/protected-set.js';
import { MAX_HOST_ADDRESSES, type ReportedHost } from '../cluster/report.js';
import { readDefaultRouteInterfaces, readHostFacts, type HostFacts } from '../sentry/host-facts.js';
import type { AntiSpoofing } from '../respond/firewall/firewall.js';
import { ClusterBlocks } from './cluster-blocks.js';
import { uplinkInterfaces } from './uplinks.js';
import { ReportQueue } from './report-queue.js';
import { Reporter } from './reporter.js';
import { serviceAwareLookup } from './service-address.js';

export interface AgentOptions {
  /** The API server (api-connection.ts: not client-node's typed clients, see there). */
  api: ApiConnection;
  node: string;
  namespace: string;
  operatorUrls: string[];
  operatorCaFile?: string;
  tokenFile: string;
  firewall: Firewall;
  /** How this instance marks the blackhole routes a policy's response.route adds. */
  routeMark?: RouteMark;
  serviceCidrs: string[];
  /** The pod network's ranges (--pod-cidr), for CNIs that leave Node.spec.podCIDR empty. */
  podCidrs: string[];
  /**
   * The node's resolv.conf files (--node-resolv-conf): their nameservers are never blocked.
   * The agent's pod has the node's own (dnsPolicy Default: the kubelet's resolv.conf).
   */
  nodeResolvConfs: string[];
  /** Programs a policy may run here (--allowed-commands); none unless the admin allows some. */
  allowedCommands: string[];
  /** hosts.deny files a policy may have written here (--allowed-hosts-deny); none unless the admin allows some. */
  allowedHostsDeny: string[];
  /** Drop what workloads forge with an uplink's source (--no-anti-spoofing turns it off). */
  antiSpoofing: boolean;
  reportIntervalMs: number;
  reportQueueCapacity: number;
  logger: Logger;
  metrics: Metrics;
}

/** How often the kernel set is compared with what it should hold, to repair drift. */
const RECONCILE_MS = 30_000;
/** The anti-spoofing uplinks are given again this often, whether or not they changed. */
const UPLINKS_RENEW_MS = 3_600_000;
/** A policy that failed to start is tried again after 1 s, doubling to this. */
const START_RETRY_MAX_MS = 60_000;

export class Agent {
  private readonly log: Logger;
  private readonly blockSet: BlockSet;
  private readonly facts: ClusterFacts;
  private readonly blockedHosts: Watched<BlockedHostObject & KubernetesObject>;
  private readonly policyMap: Watched<V1ConfigMap>;
  private readonly queue: ReportQueue;
  private reporter: Reporter | undefined;
  private sentry: Sentry | undefined;
  /** The policy this node should run (its ConfigMap's, once valid). */
  private effective: EffectivePolicy | undefined;
  /** What the sentry runs (policy name and spec), once started. */
  private running: string | undefined;
  /** Why detection is off: the policy failed to start (retried); null while it runs. */
  private detectionOff: string | null = null;
  private startFailures = 0;
  private startRetry: NodeJS.Timeout | undefined;
  private guard = new ProtectedSet(emptyFacts());
  private hostFacts: HostFacts = { gateways: [], dns: [], addresses: [] };
  private defaultRouteInterfaces: string[] = [];
  /** The firewall's anti-spoofing rule, when on; and the uplinks it was last given. */
  private antiSpoofing: AntiSpoofing | null = null;
  private uplinks = '';
  private uplinksSetAt = 0;
  private reportedHost: ReportedHost = { gateways: [], dns: [], addresses: [] };
  private readonly clusterBlocks: ClusterBlocks;
  private work: Promise<void> = Promise.resolve();
  private timers: NodeJS.Timeout[] = [];
  private isReady = false;
  private reconciling = false;

  constructor(private readonly o: AgentOptions) {
    this.log = o.logger;
    this.blockSet = new BlockSet(o.firewall, (err, address) => {
      o.metrics.actionErrors.inc({ action: 'firewall' });
      this.log.error({ address, err: (err as Error).message }, 'node firewall update failed');
    });
    this.clusterBlocks = new ClusterBlocks(this.blockSet, (address, blockedHost, why) => {
      o.metrics.protectedRefused.inc();
      this.log.error({ address, blockedHost, protected: why }, 'refusing to block a protected address');
    });
    const api = o.api;
    this.facts = new ClusterFacts(api, o.logger, () => this.serially(() => this.updateProtected()), { serviceCidrs: o.serviceCidrs, podCidrs: o.podCidrs });
    this.blockedHosts = new Watched<BlockedHostObject & KubernetesObject>({
      api,
      path: customPath(PLURALS.blockedHosts),
      lean: leanBlockedHost,
      logger: o.logger,
      onChange: () => this.serially(() => this.enforce()),
      onEvent: (type, bh) => {
        this.clusterBlocks.changed(bh.metadata.name, type === 'delete' ? canonicalAddress(bh.spec?.address ?? '') : undefined);
        // Stage timings (CLOCK_MONOTONIC ns) for the cluster bench; not for the start's list.
        if (type === 'add' && this.isReady && this.log.isLevelEnabled('debug'))
          this.log.debug({ address: bh.spec?.address, atNs: String(process.hrtime.bigint()) }, 'BlockedHost event');
      },
    });
    const name = nodePolicyConfigMapName(o.node);
    this.policyMap = new Watched<V1ConfigMap>({
      api,
      path: `/api/v1/namespaces/${o.namespace}/configmaps`,
      fieldSelector: `metadata.name=${name}`,
      logger: o.logger,
      onChange: () => this.serially(() => this.applyPolicy()),
    });
    this.queue = new ReportQueue(o.reportQueueCapacity);
  }

  ready(): string | null {
    if (!this.isReady) return 'starting';
    return this.detectionOff ? `detection off: ${this.detectionOff}` : null;
  }

  /** Cluster changes are applied one at a time, in order. */
  private serially(fn: () => Promise<void>): void {
    this.work = this.work.then(fn).catch((err: unknown) => this.log.error({ err: describeError(err) }, 'agent update failed'));
  }

  async start(): Promise<void> {
    const { metrics, node } = this.o;
    metrics.agentInfo.set({ node }, 1);
    await this.o.firewall.setup({ keepEntries: true });
    await this.startAntiSpoofing();
    await this.readHostFacts();
    this.facts.start();
    this.blockedHosts.start();
    this.policyMap.start();
    await Promise.all([this.facts.synced(), this.blockedHosts.synced, this.policyMap.synced]);
    await this.work;
    this.serially(async () => {
      await this.updateProtected();
      await this.enforce();
      const { added, removed } = await this.blockSet.reconcile();
      this.log.info({ added, removed, blocked: this.blockSet.size }, 'node firewall set rebuilt from the cluster');
      await this.applyPolicy();
    });
    await this.work;
    this.reporter = new Reporter({
      urls: this.o.operatorUrls,
      ...(this.o.operatorCaFile ? { caFile: this.o.operatorCaFile } : {}),
      tokenFile: this.o.tokenFile,
      lookup: serviceAwareLookup(this.o.api, this.log),
      node,
      policy: () => this.effective?.policy ?? null,
      detectionOff: () => this.detectionOff,
      host: () => this.reportedHost,
      queue: this.queue,
      intervalMs: this.o.reportIntervalMs,
      logger: this.log,
      metrics,
    });
    this.reporter.start();
    this.timers.push(
      setInterval(() => {
        this.serially(async () => {
          await this.readHostFacts();
          await this.updateProtected();
          await this.enforce();
          // Outside the chain: BlockedHost changes go on being applied while it lists the set.
          this.reconcileSet();
        });
      }, RECONCILE_MS),
      setInterval(() => this.serially(() => this.enforce()), 1000),
    );
    this.isReady = true;
    this.log.info({ policy: this.effective?.policy ?? null }, 'agent ready');
  }

  async stop(): Promise<void> {
    this.isReady = false;
    for (const t of this.timers) clearInterval(t);
    clearTimeout(this.startRetry);
    this.blockedHosts.stop();
    this.policyMap.stop();
    this.facts.stop();
    await this.reporter?.stop();
    await this.work;
    await this.sentry?.stop();
    // The node set stays: blocks in force must survive an agent restart or upgrade.
    this.log.info({ blocked: this.blockSet.size }, 'agent stopped; node firewall set left in place');
  }

  /** Compares the node set with what it should hold (drift repaired); one at a time. */
  private reconcileSet(): void {
    if (this.reconciling) return;
    this.reconciling = true;
    void this.blockSet
      .reconcile({ inTurns: true })
      .catch((err: unknown) => this.log.error({ err: describeError(err) }, 'node firewall reconcile failed'))
      .finally(() => (this.reconciling = false));
  }

  private async startAntiSpoofing(): Promise<void> {
    const capability = this.o.firewall.antiSpoofing;
    if (!this.o.antiSpoofing) {
      this.log.warn('anti-spoofing off (--no-anti-spoofing): a pod with NET_RAW can send packets with any source through this node');
      return;
    }
    if (!capability) {
      this.log.warn({ firewall: this.o.firewall.name }, 'anti-spoofing needs the nftables backend: a pod with NET_RAW can send packets with any source through this node');
      return;
    }
    await capability.enableAntiSpoofing();
    this.antiSpoofing = capability;
    this.o.metrics.readSpoofedDropped = () => capability.spoofedDropped();
  }

  /**
   * Gives the anti-spoofing rule the node's uplinks, when they changed. The kernel set holds
   * interface indexes: an uplink made again under the same name is given again too.
   */
  private async updateUplinks(): Promise<void> {
    if (!this.antiSpoofing) return;
    const uplinks = uplinkInterfaces(networkInterfaces(), this.facts.facts().nodes, this.defaultRouteInterfaces);
    const indexes = await Promise.all(uplinks.map((name) => readFile(`/sys/class/net/${name}/ifindex`, 'utf8').catch(() => '?')));
    const key = uplinks.map((name, i) => `${name}:${indexes[i]!.trim()}`).join(' ');
    const changed = key !== this.uplinks;
    // The kernel entries expire after MAX_ENTRY_LIFETIME_MS: given again long before.
    if (!changed && Date.now() - this.uplinksSetAt < UPLINKS_RENEW_MS) return;
    try {
      await this.antiSpoofing.setUplinks(uplinks);
      this.uplinks = key;
      this.uplinksSetAt = Date.now();
      if (changed) this.log.info({ uplinks }, 'anti-spoofing: packets from pod-side interfaces with a source that routes out by these are dropped');
    } catch (err) {
      this.o.metrics.actionErrors.inc({ action: 'firewall' });
      this.log.error({ uplinks, err: (err as Error).message }, 'anti-spoofing: cannot set the uplinks');
    }
  }

  private async readHostFacts(): Promise<void> {
    this.defaultRouteInterfaces = await readDefaultRouteInterfaces();
    this.hostFacts = await readHostFacts(this.o.nodeResolvConfs);
    // What the operator needs to be told: not what it protects anyway (link-local addresses,
    // one per interface on some CNIs), and no more than a report may carry.
    const tell = (list: string[]) => list.filter((a) => !isAlwaysProtected(a)).slice(0, MAX_HOST_ADDRESSES);
    const { gateways, dns, addresses } = this.hostFacts;
    this.reportedHost = { gateways: tell(gateways), dns: tell(dns), addresses: tell(addresses) };
  }

  private async updateProtected(): Promise<void> {
    const { gateways, dns, addresses } = this.hostFacts;
    const next = new ProtectedSet({ ...this.facts.facts(), gateways, dns, hostAddresses: addresses });
    const change = protectedChange(this.guard, next);
    this.guard = next;
    // Unchanged (the usual case, every 30 s): nothing to look at again, with 100,000 BlockedHosts
    // a pass over all of them held the event loop for seconds.
    if (change.added.length || change.removed.length) {
      this.sentry?.setProtected(next.all());
      this.clusterBlocks.recheck(change);
    }
    await this.updateUplinks();
  }

  /** Makes the cluster part of the node set equal to the BlockedHosts in force (cluster-blocks.ts). */
  private async enforce(): Promise<void> {
    const lifted = await this.clusterBlocks.enforce(this.blockedHosts, this.guard, Date.now());
    for (const address of lifted) await this.sentry?.release(address);
    const counts = this.blockSet.countByFamily();
    this.o.metrics.blocklistEntries.set({ family: '4' }, counts[4]);
    this.o.metrics.blocklistEntries.set({ family: '6' }, counts[6]);
    this.o.metrics.blockedHosts.set(this.blockSet.size);
  }

  private async applyPolicy(): Promise<void> {
    const cm = this.policyMap.list()[0];
    const text = cm?.data?.['policy.json'];
    if (!text) {
      clearTimeout(this.startRetry);
      this.detectionOff = null;
      this.effective = undefined;
      this.running = undefined;
      if (this.sentry) {
        this.log.warn('no policy selects this node any more: detection stopped');
        await this.sentry.stop();
        this.sentry = undefined;
      }
      return;
    }
    let effective: EffectivePolicy;
    try {
      effective = JSON.parse(text) as EffectivePolicy;
    } catch (err) {
      this.log.error({ configMap: cm.metadata?.name, err: (err as Error).message }, 'effective policy is not JSON; keeping the current one');
      return;
    }
    const r = validateSpec(effective.spec, 'spec');
    if (!r.ok) {
      this.log.error({ policy: effective.policy, problems: formatProblems(r.problems) }, 'effective policy rejected; keeping the current one');
      return;
    }
    // Whoever can write the ConfigMap or a policy must not choose what root runs or writes here.
    const refused = refusalsOf(r.value, { commands: this.o.allowedCommands, hostsDenyFiles: this.o.allowedHostsDeny });
    if (refused.length) {
      this.log.error(
        { policy: effective.policy, problems: describeRefusals(refused), allowed: { commands: this.o.allowedCommands, hostsDeny: this.o.allowedHostsDeny } },
        'effective policy rejected: it runs commands or writes files this node does not allow (--allowed-commands, --allowed-hosts-deny); keeping the current one',
      );
      return;
    }
    this.effective = { ...effective, spec: r.value };
    const key = `${effective.policy} ${JSON.stringify(r.value)}`;
    if (this.running === key) return;
    clearTimeout(this.startRetry);
    // Classic history files are for standalone hosts; the cluster has BlockedHosts and Events.
    const policy = compilePolicy(effective.policy, { ...r.value, files: { history: '', blocked: '' } });
    try {
      if (this.sentry) {
        await this.sentry.reconfigure(policy);
      } else {
        this.sentry = new Sentry(policy, this.log, this.o.metrics, {
          firewall: this.blockSet.view('local'),
          onProbe: (probe, decision) => this.onProbe(probe, decision),
          ...(this.o.routeMark ? { routeMark: this.o.routeMark } : {}),
        });
        this.sentry.setProtected(this.guard.all());
        await this.sentry.start();
      }
    } catch (err) {
      // Half started is not started: stop it all, and start from scratch on the next try.
      const why = (err as Error).message;
      await this.sentry?.stop().catch(() => undefined);
      this.sentry = undefined;
      this.running = undefined;
      this.detectionOff = `policy ${effective.policy}: ${why}`.slice(0, 1024);
      const retryInMs = Math.min(START_RETRY_MAX_MS, 1000 * 2 ** Math.min(this.startFailures++, 16));
      this.log.error({ policy: effective.policy, err: why, retryInMs }, 'policy start failed; retrying');
      this.startRetry = setTimeout(() => this.serially(() => this.applyPolicy()), retryInMs);
      return;
    }
    this.running = key;
    this.detectionOff = null;
    this.startFailures = 0;
    this.log.info({ policy: effective.policy, generation: effective.generation }, 'effective policy in force');
  }

  private onProbe(probe: Probe, decision: Decision): void {
    if (this.effective?.spec.response.scope !== 'cluster') return;
    const blocked = decision.kind === 'respond' ? decision.block.action === 'block' : (this.sentry?.isBlocked(probe.source.text) ?? false);
    this.queue.add(probe.source.text, { protocol: probe.protocol, port: probe.port, type: probe.type, time: probe.time }, probe.verified, blocked);
  }
}
