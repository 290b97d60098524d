// The operator: policies to nodes, agent reports to BlockedHosts, BlockedHosts to optional
// network-policy outputs. Every replica serves reports and metrics; only the Lease holder
// acts (others answer reports with 503 so agents retry, and reach the leader).
import type { Server } from 'node:http';
import type { KubernetesObject, V1ConfigMap } from '@kubernetes/client-node';
import { BlockBudget } from '../engine/block-budget.js';
import type { Logger } from '../log/logger.js';
import type { OperatorMetrics } from '../metrics/operator-metrics.js';
import { parseDuration } from '../policy/duration.js';
import type { PolicySpec } from '../policy/types.js';
import { formatProblems, validateSpec } from '../policy/validate.js';
import { describeRefusals, refusalReason, refusalsOf } from '../policy/node-allowances.js';
import { GROUP, VERSION } from '../k8s/api-schemas.js';
import { decideClusterBlock } from '../cluster/block-decision.js';
import { sharedHostFacts } from '../cluster/shared-host-facts.js';
import { ClusterFacts } from '../k8s/cluster-facts.js';
import { applyObject, custom, customPath, describeError, mergePatch, objectPath, PLURALS, rawRequest, statusOf, type Kube } from '../k8s/client.js';
import { Watched } from '../k8s/informer.js';
import {
  blockedHostName,
  canonicalAddress,
  condition,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  isNodePolicyConfigMapName,
  nodePolicyConfigMapName,
  type BlockedHostObject,
  type BlockedHostStatus,
  type Condition,
  type EffectivePolicy,
  type PolicyObject,
} from '../k8s/objects.js';
import { ProtectedSet } from '../engine/protected-set.js';
import type { Report, ReportedHost } from '../k8s/report.js';
import { Correlator, nodesTouching, portNames, type SourceActivity } from './correlator.js';
import { EventRecorder } from './events.js';
import { LeaderElector } from './leader.js';
import { calicoObjectRefs, CILIUM_REF, OUTPUT_NAME, renderCalico, renderCilium, renderNetworkPolicy, type ObjectRef } from './outputs.js';
import { startReportServer } from './report-server.js';
import { apiServerKeys } from './api-server-keys.js';
import { tokenReviewAuthenticator, type Authenticator } from './token-authenticator.js';
import { resolveNodePolicies, type Candidate } from './selection.js';

export const NODE_ANNOTATION = 'kube-portsentry.io/node';
const STATUS_MIN_INTERVAL_MS = 2000;
/** Three of the agents' 30 s repeats of "detection off". */
const DETECTION_OFF_TTL_MS = 90_000;

export interface OperatorOptions {
  kube: Kube;
  namespace: string;
  identity: string;
  leaseName: string;
  leaseDurationMs: number;
  listenAddress: string;
  tls?: { cert: string; key: string };
  agentServiceAccount: string;
  tokenAudience: string;
  networkPolicyNamespaces: string[];
  calico: boolean;
  cilium: boolean;
  serviceCidrs: string[];
  /** The pod network's ranges (--pod-cidr), for CNIs that leave Node.spec.podCIDR empty. */
  podCidrs?: string[];
  maxTrackedSources: number;
  logger: Logger;
  metrics: OperatorMetrics;
  /** Programs a policy may run on the nodes (the agents' --allowed-commands); others make it not Ready. */
  allowedCommands?: string[];
  /** hosts.deny files a policy may have the agents write (their --allowed-hosts-deny). */
  allowedHostsDeny?: string[];
  /** Accept report tokens bound to no pod (see ReportServerOptions). */
  allowUnboundTokens?: boolean;
  /** Tests may swap the TokenReview check. */
  authenticate?: Authenticator;
}

interface ValidPolicy {
  name: string;
  generation: number;
  spec: PolicySpec;
}

export class Operator {
  private readonly kube: Kube;
  private readonly log: Logger;
  private readonly policies: Watched<PolicyObject & KubernetesObject>;
  private readonly blockedHosts: Watched<BlockedHostObject & KubernetesObject>;
  private readonly configMaps: Watched<V1ConfigMap>;
  private readonly facts: ClusterFacts;
  private readonly elector: LeaderElector;
  private readonly correlator: Correlator;
  private readonly events: EventRecorder;
  private readonly budgets = new Map<string, BlockBudget>();
  private valid = new Map<string, ValidPolicy>();
  /** The BlockedHosts by name, kept from the watch's events; the names holding each address. */
  private readonly index = new Map<string, IndexedBlockedHost>();
  private readonly namesByAddress = new Map<string, Set<string>>();
  private readonly counts = { detected: 0, manual: 0 };
  /** Addresses with a create or status update in flight, so reports do not race them. */
  private readonly inFlight = new Map<string, Promise<void>>();
  private readonly statusWrittenAt = new Map<string, number>();
  private server: Server | undefined;
  private timers: NodeJS.Timeout[] = [];
  private dirty = { policies: false, outputs: false };
  private running = false;

  constructor(private readonly o: OperatorOptions) {
    this.kube = o.kube;
    this.log = o.logger;
    const watch = o.kube.watch;
    const onPolicies = () => this.markDirty('policies');
    this.policies = new Watched({
      watch,
      path: customPath(PLURALS.policies),
      list: () => o.kube.custom.listClusterCustomObject(custom(PLURALS.policies)),
      logger: o.logger,
      onChange: onPolicies,
    });
    this.blockedHosts = new Watched({
      watch,
      path: customPath(PLURALS.blockedHosts),
      list: () => o.kube.custom.listClusterCustomObject(custom(PLURALS.blockedHosts)),
      logger: o.logger,
      onChange: () => this.onBlockedHosts(),
      onEvent: (type, bh) => this.indexBlockedHost(bh.metadata.name, type === 'delete' ? undefined : bh),
    });
    // Every ConfigMap of the namespace, not only labelled ones: the per-node names are ours,
    // whoever wrote them, and anything else under those names is replaced or deleted.
    this.configMaps = new Watched<V1ConfigMap>({
      watch,
      path: `/api/v1/namespaces/${o.namespace}/configmaps`,
      list: () => o.kube.core.listNamespacedConfigMap({ namespace: o.namespace }),
      logger: o.logger,
      onChange: onPolicies,
    });
    this.facts = new ClusterFacts(
      o.kube,
      o.logger,
      () => {
        this.guard = undefined;
        onPolicies();
      },
      {
        serviceCidrs: o.serviceCidrs,
        podCidrs: o.podCidrs ?? [],
        // Pods come and go: only the guard and what it filters (the outputs) follow them.
        onPods: () => {
          this.guard = undefined;
          this.markDirty('outputs');
        },
      },
    );
    this.correlator = new Correlator(o.maxTrackedSources);
    this.events = new EventRecorder(o.kube, 'kube-portsentry-operator', o.identity, o.logger);
    this.elector = new LeaderElector({
      kube: o.kube,
      namespace: o.namespace,
      name: o.leaseName,
      identity: o.identity,
      leaseDurationMs: o.leaseDurationMs,
      logger: o.logger,
      onStarted: () => {
        o.metrics.leader.set(1);
        this.markDirty('policies');
        this.markDirty('outputs');
      },
      onLost: () => {
        o.metrics.leader.set(0);
        // Half-done leader work must not race the new leader: start over as a follower.
        this.log.fatal('lost leadership; exiting so a clean replica takes over');
        process.exitCode = 1;
        process.kill(process.pid, 'SIGTERM');
      },
    });
  }

  /** The agents' ServiceAccount, as tokens and TokenReviews name it. */
  private get agentUser(): string {
    return `system:serviceaccount:${this.o.namespace}:${this.o.agentServiceAccount}`;
  }

  get isLeader(): boolean {
    return this.elector.isLeader;
  }

  ready(): string | null {
    if (!this.running) return 'starting';
    if (!this.policies.isSynced || !this.blockedHosts.isSynced || !this.facts.nodes.isSynced) return 'caches not synced';
    return null;
  }

  async start(): Promise<void> {
    this.o.metrics.leader.set(0);
    this.policies.start();
    this.blockedHosts.start();
    this.configMaps.start();
    this.facts.start();
    this.server = await startReportServer({
      address: this.o.listenAddress,
      ...(this.o.tls ? { tls: this.o.tls } : {}),
      authenticate:
        this.o.authenticate ??
        tokenReviewAuthenticator(this.kube, { audience: this.o.tokenAudience, subject: this.agentUser, keys: apiServerKeys(this.kube, this.log) }, this.log),
      allowedUser: this.agentUser,
      allowUnboundTokens: this.o.allowUnboundTokens ?? false,
      // Reports are only useful once the caches are there to act on them.
      isLeader: () => this.isLeader && this.ready() === null,
      accept: (r) => this.accept(r),
      logger: this.log,
      metrics: this.o.metrics,
    });
    await Promise.all([this.policies.synced, this.blockedHosts.synced, this.configMaps.synced, this.facts.synced()]);
    this.running = true;
    this.elector.start();
    this.timers.push(setInterval(() => this.housekeeping(), 1000));
    this.log.info({ reports: this.o.listenAddress }, 'operator ready');
  }

  async stop(): Promise<void> {
    this.running = false;
    for (const t of this.timers) clearInterval(t);
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server?.closeAllConnections?.();
    await Promise.allSettled(this.inFlight.values());
    await this.elector.stop();
    this.policies.stop();
    this.blockedHosts.stop();
    this.configMaps.stop();
    this.facts.stop();
  }

  private markDirty(what: 'policies' | 'outputs'): void {
    if (what === 'policies') this.assigned = undefined;
    this.dirty[what] = true;
    setImmediate(() => void this.flush());
  }

  private flushing = false;
  private async flush(): Promise<void> {
    if (this.flushing || !this.running || !this.isLeader) return;
    this.flushing = true;
    try {
      while (this.dirty.policies || this.dirty.outputs) {
        if (this.dirty.policies) {
          this.dirty.policies = false;
          await this.timed('policy', () => this.reconcilePolicies());
        }
        if (this.dirty.outputs) {
          this.dirty.outputs = false;
          await this.timed('output', () => this.reconcileOutputs());
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async timed(kind: string, fn: () => Promise<void>): Promise<void> {
    const end = this.o.metrics.reconcileDuration.startTimer({ kind });
    try {
      await fn();
      this.o.metrics.reconciles.inc({ kind, result: 'ok' });
    } catch (err) {
      this.o.metrics.reconciles.inc({ kind, result: 'error' });
      this.log.error({ kind, err: describeError(err) }, 'reconcile failed; retrying');
      setTimeout(() => this.markDirty(kind === 'policy' ? 'policies' : 'outputs'), 2000).unref();
    } finally {
      end();
    }
  }

  /** Rebuilt only when the cluster facts or a node's own facts change, not per report. */
  private guard: ProtectedSet | undefined;
  private protectedSet(): ProtectedSet {
    if (this.guard) return this.guard;
    // A node that left the cluster takes its facts along.
    const live = [...this.nodeHosts].filter(([node]) => !this.facts.nodes.isSynced || this.facts.nodes.get(node)).map(([, host]) => host);
    const { gateways, dns, addresses } = sharedHostFacts(live);
    return (this.guard = new ProtectedSet({ ...this.facts.facts(), gateways, dns, hostAddresses: addresses }));
  }

  /** Each node's gateways, resolvers and interface addresses, as its agent last reported them. */
  private readonly nodeHosts = new Map<string, ReportedHost>();

  private recordHost(node: string, host: ReportedHost): void {
    const before = this.nodeHosts.get(node);
    if (before && JSON.stringify(before) === JSON.stringify(host)) return;
    this.nodeHosts.set(node, host);
    this.guard = undefined;
  }

  // ---- policies -> nodes

  /** Which policy each node runs, from the caches; dropped when policies or nodes change. */
  private assigned: Map<string, string> | undefined;

  /** The policy the operator gives `node` (its agent's reports are judged by it), if any. */
  private policyOf(node: string): ValidPolicy | undefined {
    this.assigned ??= this.resolvePolicies().mapping;
    const name = this.assigned.get(node);
    return name === undefined ? undefined : this.policyNamed(name);
  }

  /** The valid policies, the problems of the others, and which one each node runs. */
  private resolvePolicies(): { valid: Map<string, ValidPolicy>; problems: Map<string, { reason: string; message: string }>; mapping: Map<string, string> } {
    const candidates: Candidate[] = [];
    const valid = new Map<string, ValidPolicy>();
    const problems = new Map<string, { reason: string; message: string }>();
    for (const p of this.policies.list()) {
      const r = validateSpec(p.spec ?? {}, 'spec');
      if (!r.ok) {
        problems.set(p.metadata.name, { reason: 'InvalidSpec', message: formatProblems(r.problems) });
        continue;
      }
      // The agents refuse it too; saying so here puts the reason on the policy's status.
      const refused = refusalsOf(r.value, { commands: this.o.allowedCommands ?? [], hostsDenyFiles: this.o.allowedHostsDeny ?? [] });
      if (refused.length) {
        problems.set(p.metadata.name, { reason: refusalReason(refused), message: describeRefusals(refused) });
        continue;
      }
      const generation = p.metadata.generation ?? 0;
      valid.set(p.metadata.name, { name: p.metadata.name, generation, spec: r.value });
      candidates.push({
        name: p.metadata.name,
        priority: r.value.priority,
        created: Date.parse(String(p.metadata.creationTimestamp ?? '')) || 0,
        selector: r.value.nodeSelector,
      });
    }
    const nodes = this.facts.nodes.list().map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }));
    return { valid, problems, mapping: resolveNodePolicies(candidates, nodes) };
  }

  private async reconcilePolicies(): Promise<void> {
    const { valid, problems, mapping } = this.resolvePolicies();
    this.valid = valid;
    this.assigned = mapping;

    // One ConfigMap per node with its effective policy; none for nodes no policy selects.
    // Any difference from what we would write (data, label, annotation) is drift, put right.
    const existing = new Map(
      this.configMaps
        .list()
        .filter((cm) => isNodePolicyConfigMapName(cm.metadata?.name ?? ''))
        .map((cm) => [cm.metadata!.name!, cm]),
    );
    const wanted = new Set<string>();
    for (const [node, policyName] of mapping) {
      const policy = valid.get(policyName)!;
      const name = nodePolicyConfigMapName(node);
      wanted.add(name);
      const effective: EffectivePolicy = { policy: policy.name, generation: policy.generation, spec: policy.spec };
      const data = { 'policy.json': JSON.stringify(effective) };
      const current = existing.get(name);
      if (
        current &&
        JSON.stringify(current.data) === JSON.stringify(data) &&
        current.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY &&
        current.metadata?.annotations?.[NODE_ANNOTATION] === node
      )
        continue;
      const body: V1ConfigMap = {
        metadata: {
          name,
          namespace: this.o.namespace,
          labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
          annotations: { [NODE_ANNOTATION]: node },
          ...(current ? { resourceVersion: current.metadata?.resourceVersion } : {}),
        },
        data,
      };
      // A 409 (someone wrote it meanwhile) fails the pass; the retry sees it and replaces it.
      if (current) await this.kube.core.replaceNamespacedConfigMap({ name, namespace: this.o.namespace, body });
      else await this.kube.core.createNamespacedConfigMap({ namespace: this.o.namespace, body });
      if (current?.data?.['policy.json'] === data['policy.json']) this.log.warn({ node, configMap: name }, 'node policy ConfigMap drifted; restored');
      else if (current && current.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY) this.log.warn({ node, configMap: name }, 'node policy ConfigMap written by someone else; replaced');
      this.log.info({ node, policy: policy.name, generation: policy.generation }, 'effective policy published');
    }
    for (const name of existing.keys())
      if (!wanted.has(name))
        await this.kube.core.deleteNamespacedConfigMap({ name, namespace: this.o.namespace }).catch(ignore(404));

    // Status: Ready with the matched node count, or the validation problems.
    const counts = new Map<string, number>();
    for (const policyName of mapping.values()) counts.set(policyName, (counts.get(policyName) ?? 0) + 1);
    for (const p of this.policies.list()) {
      const name = p.metadata.name;
      const generation = p.metadata.generation;
      const previous = p.status?.conditions;
      const problem = problems.get(name);
      const matched = counts.get(name) ?? 0;
      const ready = problem
        ? condition('Ready', 'False', problem.reason, problem.message, generation, previous)
        : matched > 0
          ? condition('Ready', 'True', 'Applied', `in force on ${matched} node(s)`, generation, previous)
          : condition('Ready', 'True', 'NoMatchingNodes', 'valid, but in force on no node (no node selected, or a higher priority policy wins)', generation, previous);
      const detecting = this.detecting(name, generation, previous);
      const status = { observedGeneration: generation, matchedNodes: matched, conditions: detecting ? [ready, detecting] : [ready] };
      const before = p.status;
      const same =
        before?.observedGeneration === status.observedGeneration &&
        before?.matchedNodes === status.matchedNodes &&
        JSON.stringify(before?.conditions) === JSON.stringify(status.conditions);
      if (same) continue;
      await this.kube.custom
        .patchClusterCustomObjectStatus({ ...custom(PLURALS.policies), name, body: { status } }, mergePatch)
        .catch(ignore(404));
      if (problem) this.log.warn({ policy: name, reason: problem.reason, problems: problem.message }, 'policy rejected');
    }
  }

  // ---- reports -> BlockedHosts

  /**
   * Replaces what the index holds for one BlockedHost name (nothing: deleted). Each change
   * costs the same however many BlockedHosts there are: no pass over all of them per event.
   */
  private indexBlockedHost(name: string, bh: BlockedHostObject | undefined): void {
    const before = this.index.get(name);
    if (before) {
      this.index.delete(name);
      this.counts[before.source]--;
      const holders = before.address ? this.namesByAddress.get(before.address) : undefined;
      holders?.delete(name);
      if (holders?.size === 0) this.namesByAddress.delete(before.address!);
    }
    if (!bh) return;
    const address = canonicalAddress(bh.spec?.address ?? '');
    const source = bh.spec?.source === 'detected' ? 'detected' : 'manual';
    const expiresAt = bh.spec?.expiresAt ? Date.parse(bh.spec.expiresAt) : Infinity;
    this.index.set(name, { bh, address, source, expiresAt });
    this.counts[source]++;
    if (!address) return;
    let holders = this.namesByAddress.get(address);
    if (!holders) this.namesByAddress.set(address, (holders = new Set()));
    holders.add(name);
  }

  /** A BlockedHost that blocks `address` (the first made, when several do). */
  private blockedHostFor(address: string): BlockedHostObject | undefined {
    const holders = this.namesByAddress.get(address);
    if (!holders) return undefined;
    for (const name of holders) return this.index.get(name)?.bh;
    return undefined;
  }

  private onBlockedHosts(): void {
    this.o.metrics.blockedHosts.set({ source: 'detected' }, this.counts.detected);
    this.o.metrics.blockedHosts.set({ source: 'manual' }, this.counts.manual);
    this.markDirty('outputs');
  }

  /**
   * The policy a report names, from the watch cache: a leader that has just taken over gets
   * reports before its first policy reconcile has filled `valid`, and must not drop them.
   */
  private policyNamed(name: string): ValidPolicy | undefined {
    const object = this.policies.get(name);
    if (!object) return undefined;
    const generation = object.metadata.generation ?? 0;
    const known = this.valid.get(name);
    if (known?.generation === generation) return known;
    const r = validateSpec(object.spec ?? {}, 'spec');
    return r.ok ? { name, generation, spec: r.value } : undefined;
  }

  private async accept(report: Report): Promise<void> {
    if (report.host) this.recordHost(report.node, report.host);
    // A report is judged by the policy the node runs, never by the one it names: an agent
    // must not pick a policy of other nodes that blocks on less evidence. A node that has
    // just changed policy names the old one for a moment: its probes count under the new.
    const policy = this.policyOf(report.node);
    this.noteDetection(report, policy?.name);
    if (report.policy === null || report.sources.length === 0) return;
    if (!policy) {
      this.log.warn({ node: report.node, policy: report.policy }, 'report from a node no valid policy selects; its sources ignored');
      return;
    }
    if (report.policy !== policy.name && this.misnamed.get(report.node) !== report.policy) {
      this.misnamed.set(report.node, report.policy);
      this.log.warn({ node: report.node, named: report.policy, policy: policy.name }, 'report names another policy than its node\'s; judged by its node\'s');
    }
    const spec = policy.spec;
    if (spec.response.scope !== 'cluster') return;
    // The creations this report depends on, its own and those already under way for its sources.
    const writes: Promise<void>[] = [];
    const now = Date.now();
    const guard = this.protectedSet();
    const trigger = { count: spec.trigger.count, windowMs: parseDuration(spec.trigger.window)! };
    for (const r of report.sources) {
      if (guard.reason(r.source)) continue;
      const { activity, triggered } = this.correlator.observe(report.node, policy.name, r, trigger, now);
      const existing = this.blockedHostFor(r.source);
      if (existing) {
        this.updateStatusSoon(r.source, activity);
        continue;
      }
      const tcp = portNames(activity).some((p) => p.startsWith('tcp/'));
      const decision = decideClusterBlock(
        { triggered, blockedLocally: activity.blockedLocally, verifiedNodes: activity.verifiedNodes.size, nodes: nodesTouching(activity) },
        { action: tcp ? spec.response.tcp : spec.response.udp, verifiedOnly: spec.response.verifiedOnly, evidence: spec.response.clusterEvidence },
      );
      if (decision.kind === 'none') continue;
      const summary = `${activity.touches.size} distinct probe(s) on ${activity.nodes.size} node(s): ${portNames(activity).slice(0, 10).join(', ')}`;
      if (decision.kind === 'alert') {
        if (!activity.blockedLocally && this.alerted.get(r.source) !== activity.firstSeen) {
          this.alerted.set(r.source, activity.firstSeen);
          this.o.metrics.scans.inc({ protocol: tcp ? 'tcp' : 'udp' });
          this.log.warn({ source: r.source, policy: policy.name, nodes: [...activity.nodes] }, `cluster-wide scan detected (alert only): ${summary}`);
        }
        continue;
      }
      if (decision.kind === 'node-only') {
        if (this.heldToNode.get(r.source) !== activity.firstSeen) {
          this.heldToNode.set(r.source, activity.firstSeen);
          this.o.metrics.uncorroborated.inc({ policy: policy.name });
          this.log.info(
            { source: r.source, policy: policy.name, nodes: [...activity.nodes] },
            `unverified detection kept to the node that saw it: no handshake proves its source, and no second node reported it (${summary})`,
          );
        }
        continue;
      }
      let budget = this.budgets.get(policy.name);
      if (!budget) this.budgets.set(policy.name, (budget = new BlockBudget(spec.response.maxBlocksPerMinute, now)));
      budget.configure(spec.response.maxBlocksPerMinute);
      const pending = this.creating.get(r.source);
      if (pending) {
        writes.push(pending);
        continue;
      }
      // As on the nodes (block-budget.ts): a flood of one-shot sources spends only what
      // first-seen sources may, never what a verified or a returning source needs.
      if (!budget.take(now, decision.basis === 'verified' ? 'verified' : activity.refused ? 'returning' : 'first')) {
        this.o.metrics.blocksRateLimited.inc({ policy: policy.name });
        if (!activity.refused) this.log.warn({ source: r.source, policy: policy.name }, 'cluster block refused: maxBlocksPerMinute reached');
        activity.refused = true;
        continue;
      }
      this.o.metrics.scans.inc({ protocol: tcp ? 'tcp' : 'udp' });
      const creation = this.createBlockedHost(activity, policy, `${summary}; ${decision.basis}`);
      this.creating.set(r.source, creation);
      this.runFor(r.source, () => creation.finally(() => this.creating.delete(r.source)));
      writes.push(creation);
    }
    if (this.alerted.size > 10_000) this.alerted.clear();
    if (this.heldToNode.size > 10_000) this.heldToNode.clear();
    await Promise.all(writes);
  }

  /**
   * Nodes whose agent says its detection is off (its policy failed to start), for the
   * policy's Detecting condition. Agents repeat it every 30 s while off; older is forgotten.
   */
  private readonly detectionOff = new Map<string, { policy: string; why: string; at: number }>();

  /** The node's word on its detection, for the policy it runs (`assigned`) only. */
  private noteDetection(report: Report, assigned: string | undefined): void {
    const before = this.detectionOff.get(report.node);
    if (report.detectionOff && report.policy !== null && report.policy === assigned) this.detectionOff.set(report.node, { policy: report.policy, why: report.detectionOff, at: Date.now() });
    else this.detectionOff.delete(report.node);
    if (before?.why !== report.detectionOff || before?.policy !== report.policy) this.markDirty('policies');
  }

  /** Forgets nodes that stopped saying their detection is off (an agent gone, or a lost leader's state). */
  private expireDetectionOff(now: number): void {
    for (const [node, d] of this.detectionOff)
      if (now - d.at > DETECTION_OFF_TTL_MS) {
        this.detectionOff.delete(node);
        this.markDirty('policies');
      }
  }

  /** The Detecting condition: False naming the nodes whose policy failed to start; True once one was reported and none is. */
  private detecting(name: string, generation: number | undefined, previous: Condition[] | undefined): Condition | undefined {
    const off = [...this.detectionOff].filter(([, d]) => d.policy === name);
    if (off.length) {
      const listed = off.slice(0, 5).map(([node, d]) => `${node}: ${d.why}`);
      if (off.length > 5) listed.push(`and ${off.length - 5} more node(s)`);
      return condition('Detecting', 'False', 'StartFailed', listed.join('; ').slice(0, 4096), generation, previous);
    }
    if (previous?.some((c) => c.type === 'Detecting')) return condition('Detecting', 'True', 'Running', 'no node reports its detection off', generation, previous);
    return undefined;
  }

  /** BlockedHost creations under way, by address: a report waits for them before its 200. */
  private readonly creating = new Map<string, Promise<void>>();

  private readonly alerted = new Map<string, number>();
  /** The policy each node last named other than its own (logged once per change). */
  private readonly misnamed = new Map<string, string>();
  /** Sources kept to their node, by first seen: logged and counted once per activity. */
  private readonly heldToNode = new Map<string, number>();

  private runFor(address: string, work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => this.log.error({ source: address, err: describeError(err) }, 'BlockedHost update failed'))
      .finally(() => this.inFlight.delete(address));
    this.inFlight.set(address, p);
  }

  private statusOf(a: SourceActivity): BlockedHostStatus {
    const iso = (ms: number) => new Date(ms).toISOString();
    return {
      firstSeen: iso(a.firstSeen),
      lastSeen: iso(a.lastSeen),
      probes: a.probes,
      ports: portNames(a).slice(0, 1024),
      scanTypes: [...a.types].sort(),
      reportingNodes: [...a.nodes].sort().slice(0, 5000),
    };
  }

  private async createBlockedHost(a: SourceActivity, policy: ValidPolicy, summary: string): Promise<void> {
    const name = blockedHostName(a.source);
    const duration = parseDuration(policy.spec.response.duration)!;
    const expiresAt = new Date(Date.now() + duration).toISOString().replace(/\.\d+Z$/, 'Z');
    const reason = `${a.blockedLocally && a.touches.size <= policy.spec.trigger.count ? 'node trigger' : 'cluster-wide trigger'}: ${summary}`.slice(0, 1024);
    const body = {
      apiVersion: `${GROUP}/${VERSION}`,
      kind: 'BlockedHost',
      metadata: { name, labels: { [LABEL_MANAGED_BY]: MANAGED_BY } },
      spec: { address: a.source, reason, policy: policy.name, source: 'detected', expiresAt },
    };
    let created: BlockedHostObject;
    try {
      created = (await this.kube.custom.createClusterCustomObject({ ...custom(PLURALS.blockedHosts), body })) as BlockedHostObject;
    } catch (err) {
      if (statusOf(err) === 409) return; // someone (a manual block, or an earlier leader) got there first
      throw err;
    }
    this.indexBlockedHost(name, created);
    this.log.warn({ source: a.source, blockedHost: name, policy: policy.name, expiresAt, nodes: [...a.nodes] }, 'cluster-wide block');
    await this.writeStatus(name, a);
    const target = { apiVersion: `${GROUP}/${VERSION}`, kind: 'BlockedHost', name, uid: created.metadata.uid };
    this.events.record(target, 'Warning', 'Blocked', `${a.source} blocked on every node until ${expiresAt}; ${reason}`);
    // One Event for every reporting node together, its count the number of nodes (as the
    // Kubernetes event recorder folds repeats): a scan of 1,000 nodes costs two writes.
    const nodes = [...a.nodes].sort();
    const listed = `${nodes.slice(0, 10).join(', ')}${nodes.length > 10 ? ` and ${nodes.length - 10} more` : ''}`;
    this.events.record(target, 'Warning', 'ScanDetected', `scan from ${a.source} seen on ${nodes.length} node(s) (${listed}): ${summary}`, nodes.length);
  }

  private updateStatusSoon(address: string, a: SourceActivity): void {
    const bh = this.blockedHostFor(address);
    if (!bh || this.inFlight.has(address)) return;
    const last = this.statusWrittenAt.get(address) ?? 0;
    if (Date.now() - last < STATUS_MIN_INTERVAL_MS) return;
    this.runFor(address, () => this.writeStatus(bh.metadata.name, a));
  }

  private async writeStatus(name: string, a: SourceActivity): Promise<void> {
    this.statusWrittenAt.set(a.source, Date.now());
    if (this.statusWrittenAt.size > 100_000) this.statusWrittenAt.clear();
    await this.kube.custom
      .patchClusterCustomObjectStatus({ ...custom(PLURALS.blockedHosts), name, body: { status: this.statusOf(a) } }, mergePatch)
      .catch(ignore(404));
  }

  // ---- expiry

  private housekeeping(): void {
    if (!this.isLeader || !this.running) return;
    const now = Date.now();
    for (const { bh, address: canonical, source, expiresAt } of this.index.values()) {
      if (source !== 'detected' || !(expiresAt <= now) || bh.metadata.deletionTimestamp) continue;
      const address = canonical ?? bh.spec.address;
      if (this.inFlight.has(address)) continue;
      this.runFor(address, async () => {
        await this.kube.custom
          .deleteClusterCustomObject({ ...custom(PLURALS.blockedHosts), name: bh.metadata.name })
          .catch(ignore(404));
        this.correlator.forget(address);
        this.log.info({ source: address, blockedHost: bh.metadata.name }, 'block expired: BlockedHost deleted');
      });
    }
    let longest = 0;
    for (const p of this.valid.values()) longest = Math.max(longest, parseDuration(p.spec.trigger.window)!);
    this.correlator.expire(now, longest || 3_600_000);
    this.expireDetectionOff(now);
  }

  // ---- outputs

  /** The default-tier Calico policy of earlier versions is deleted once per run. */
  private legacyCalicoRemoved = false;

  private async reconcileOutputs(): Promise<void> {
    const { networkPolicyNamespaces, calico, cilium } = this.o;
    if (!networkPolicyNamespaces.length && !calico && !cilium) return;
    const now = Date.now();
    const guard = this.protectedSet();
    const addresses = [...this.namesByAddress.keys()].filter((a) => {
      const bh = this.blockedHostFor(a)!;
      return !guard.reason(a) && !(bh.spec.expiresAt && Date.parse(bh.spec.expiresAt) <= now);
    });
    const apply = (obj: Record<string, unknown>) => applyObject(this.kube, obj as unknown as Parameters<typeof applyObject>[1]);
    const remove = (ref: ObjectRef) => rawRequest(this.kube, 'DELETE', objectPath(ref)).catch(ignore(404));
    // Nothing blocked: no object at all, so no engine reads an empty list its own way.
    if (networkPolicyNamespaces.length) {
      const wanted = new Set<string>();
      for (const ns of networkPolicyNamespaces) {
        const np = renderNetworkPolicy(ns, addresses);
        if (np) {
          await apply(np);
          wanted.add(ns);
        }
      }
      const ours = await this.kube.networking.listNetworkPolicyForAllNamespaces({ labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY}` });
      for (const np of ours.items)
        if (np.metadata?.name === OUTPUT_NAME && !wanted.has(np.metadata.namespace ?? ''))
          await this.kube.networking
            .deleteNamespacedNetworkPolicy({ name: OUTPUT_NAME, namespace: np.metadata.namespace! })
            .catch(ignore(404));
    }
    if (calico) {
      const objects = renderCalico(addresses);
      // The tier before what goes into it; deletions the other way round.
      for (const obj of objects) await apply(obj);
      if (!objects.length) for (const ref of calicoObjectRefs()) await remove(ref);
      else if (!this.legacyCalicoRemoved) await remove(calicoObjectRefs()[1]!);
      this.legacyCalicoRemoved = true;
    }
    if (cilium) {
      const policy = renderCilium(addresses);
      if (policy) await apply(policy);
      else await remove(CILIUM_REF);
    }
    this.log.debug({ addresses: addresses.length }, 'network policy outputs applied');
  }
}

interface IndexedBlockedHost {
  bh: BlockedHostObject;
  /** Canonical, or null when the spec's address is not one. */
  address: string | null;
  source: 'detected' | 'manual';
  /** Epoch ms; Infinity without expiresAt. */
  expiresAt: number;
}

function ignore(code: number) {
  return (err: unknown): undefined => {
    if (statusOf(err) === code) return undefined;
    throw err;
  };
}
