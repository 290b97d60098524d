// What the operator's loops share: its options, the API client, the watch caches, the
// BlockedHost index, the protected set, and the BlockedHost writes in flight by address.
import type { KubernetesObject, V1ConfigMap } from '@kubernetes/client-node';
import { BlockedHostIndex, type BlockEntry } from '../cluster/blocked-host-index.js';
import { ExpiryHeap } from '../cluster/expiry-heap.js';
import { ProtectedSet } from '../cluster/protected-set.js';
import type { ReportedHost } from '../cluster/report.js';
import { sharedHostFacts } from '../cluster/shared-host-facts.js';
import { ClusterFacts } from '../k8s/cluster-facts.js';
import { customPath, describeError, PLURALS, type Kube } from '../k8s/client.js';
import { Watched } from '../k8s/watched.js';
import { blockEntryOf, withoutManagedFields, type BlockedHostObject, type PolicyObject } from '../k8s/objects.js';
import type { Logger } from '../log/logger.js';
import type { OperatorMetrics } from '../metrics/operator-metrics.js';
import type { CompiledPolicy } from '../policy/compiled.js';
import type { Authenticator } from './token-authenticator.js';

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

/** A policy that passed validation and the nodes' allowances, compiled. */
export interface ValidPolicy {
  name: string;
  generation: number;
  policy: CompiledPolicy;
}

export interface IndexedBlockedHost extends BlockEntry {
  bh: BlockedHostObject;
}

/** What a loop asks the operator to run again: the policy pass or the output pass. */
export type Pass = 'policies' | 'outputs';

export interface ContextHooks {
  /** Schedules a pass. */
  markDirty(pass: Pass): void;
  /** The BlockedHost cache changed. */
  onBlockedHosts(): void;
}

export class OperatorContext {
  readonly kube: Kube;
  readonly log: Logger;
  readonly metrics: OperatorMetrics;
  readonly policies: Watched<PolicyObject & KubernetesObject>;
  readonly blockedHosts: Watched<BlockedHostObject & KubernetesObject>;
  readonly configMaps: Watched<V1ConfigMap>;
  readonly facts: ClusterFacts;
  /** The BlockedHosts by name and by address, kept from the watch's events. */
  readonly index = new BlockedHostIndex<IndexedBlockedHost>();
  /** The detected ones by expiry, so the expiry loop looks only at those due. */
  readonly expiries = new ExpiryHeap();
  /** Addresses with a create, status update or delete in flight, so reports do not race them. */
  readonly inFlight = new Map<string, Promise<void>>();
  /** Rebuilt only when the cluster facts or a node's own facts change, not per report. */
  private guard: ProtectedSet | undefined;
  /** Each node's gateways, resolvers and interface addresses, as its agent last reported them. */
  private readonly nodeHosts = new Map<string, ReportedHost>();

  constructor(
    readonly options: OperatorOptions,
    hooks: ContextHooks,
  ) {
    const o = options;
    this.kube = o.kube;
    this.log = o.logger;
    this.metrics = o.metrics;
    const api = o.kube.api;
    const onPolicies = () => hooks.markDirty('policies');
    this.policies = new Watched({
      api,
      path: customPath(PLURALS.policies),
      logger: o.logger,
      onChange: onPolicies,
    });
    this.blockedHosts = new Watched({
      api,
      path: customPath(PLURALS.blockedHosts),
      logger: o.logger,
      onChange: () => hooks.onBlockedHosts(),
      lean: withoutManagedFields,
      onEvent: (type, bh) => this.indexBlockedHost(bh.metadata.name, type === 'delete' ? undefined : bh),
    });
    // Every ConfigMap of the namespace, not only labelled ones: the per-node names are ours,
    // whoever wrote them, and anything else under those names is replaced or deleted.
    this.configMaps = new Watched<V1ConfigMap>({
      api,
      path: `/api/v1/namespaces/${o.namespace}/configmaps`,
      logger: o.logger,
      onChange: onPolicies,
    });
    this.facts = new ClusterFacts(
      api,
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
          hooks.markDirty('outputs');
        },
      },
    );
  }

  get synced(): boolean {
    return this.policies.isSynced && this.blockedHosts.isSynced && this.facts.nodes.isSynced;
  }

  start(): Promise<unknown> {
    this.policies.start();
    this.blockedHosts.start();
    this.configMaps.start();
    this.facts.start();
    return Promise.all([this.policies.synced, this.blockedHosts.synced, this.configMaps.synced, this.facts.synced()]);
  }

  stop(): void {
    this.policies.stop();
    this.blockedHosts.stop();
    this.configMaps.stop();
    this.facts.stop();
  }

  /** Replaces what the index holds for one BlockedHost name (nothing: deleted). */
  indexBlockedHost(name: string, bh: BlockedHostObject | undefined): void {
    const entry = bh ? { ...blockEntryOf(bh.spec), bh } : undefined;
    const before = this.index.set(name, entry);
    if (entry?.source === 'detected' && entry.expiresAt !== before?.expiresAt) {
      this.expiries.push(name, entry.expiresAt);
      this.expiries.compact(this.index.size, (n) => this.index.get(n)?.expiresAt);
    }
  }

  /** A BlockedHost that blocks `address` (the first made, when several do). */
  blockedHostFor(address: string): BlockedHostObject | undefined {
    return this.index.first(address)?.bh;
  }

  protectedSet(): ProtectedSet {
    if (this.guard) return this.guard;
    // A node that left the cluster takes its facts along.
    const live = [...this.nodeHosts].filter(([node]) => !this.facts.nodes.isSynced || this.facts.nodes.get(node)).map(([, host]) => host);
    const { gateways, dns, addresses } = sharedHostFacts(live);
    return (this.guard = new ProtectedSet({ ...this.facts.facts(), gateways, dns, hostAddresses: addresses }));
  }

  /** A node's own facts as its agent reports them; the protected set follows a change. */
  recordHost(node: string, host: ReportedHost): void {
    const before = this.nodeHosts.get(node);
    if (before && JSON.stringify(before) === JSON.stringify(host)) return;
    this.nodeHosts.set(node, host);
    this.guard = undefined;
  }

  /** Runs one BlockedHost write for `address`, logged on failure, known to inFlight meanwhile. */
  runFor(address: string, work: () => Promise<void>): void {
    const p = work()
      .catch((err: unknown) => this.log.error({ source: address, err: describeError(err) }, 'BlockedHost update failed'))
      .finally(() => this.inFlight.delete(address));
    this.inFlight.set(address, p);
  }
}
