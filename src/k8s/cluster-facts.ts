// What both agent and operator watch about the cluster itself: nodes (names, labels,
// addresses, pod CIDRs), the addresses of running pods, the service CIDRs and the API
// server's endpoints. From these come the protected addresses and, for the operator, which
// policy applies where. Pod CIDRs come from the Nodes only where the CNI allocates from
// Node.spec.podCIDR (the bridge plugin, flannel, kindnet); Calico, Cilium's cluster-pool,
// AWS VPC CNI and Azure CNI allocate elsewhere, so the running pods' own addresses are
// watched too, and the pod network's ranges can be given (--pod-cidr).
import type { V1EndpointSlice, V1Node, V1Pod, V1ServiceCIDR } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { normalizeIp, parseCidr } from '../net/ip.js';
import type { ApiConnection } from './api-connection.js';
import { Watched } from './watched.js';
import type { ProtectedFacts } from '../cluster/protected-set.js';

export interface ClusterFactsOptions {
  /** Service CIDRs given on the command line (clusters without the ServiceCIDR API). */
  serviceCidrs?: string[];
  /** The pod network's ranges given on the command line (--pod-cidr). */
  podCidrs?: string[];
  /** Called when the running pods' addresses changed, at most once a second (onChange otherwise). */
  onPods?: () => void;
}

/** Running pods are watched by this field selector; the API server ends a pod that stops running as a deletion. */
const RUNNING = 'status.phase=Running';
/** Pod address changes are passed on at most this often: pods come and go all the time in a large cluster. */
const POD_CHANGES_MS = 1000;

/** What is kept of a pod: enough to know its addresses (a cache of every pod costs little). */
function leanPod(p: V1Pod): V1Pod {
  return {
    metadata: { name: p.metadata?.name, namespace: p.metadata?.namespace, uid: p.metadata?.uid, resourceVersion: p.metadata?.resourceVersion },
    spec: { hostNetwork: p.spec?.hostNetwork, containers: [] },
    status: { phase: p.status?.phase, podIPs: (p.status?.podIPs ?? []).map((a) => ({ ip: a.ip })), ...(p.status?.podIP ? { podIP: p.status.podIP } : {}) },
  };
}

/** A running pod's addresses; none for a pod on its node's network (those are the node's). */
function podAddresses(p: V1Pod): string[] {
  if (p.spec?.hostNetwork || p.status?.phase !== 'Running') return [];
  const out = new Set<string>();
  for (const text of [...(p.status?.podIPs ?? []).map((a) => a.ip), p.status?.podIP]) {
    const ip = text ? normalizeIp(text) : null;
    if (ip) out.add(ip);
  }
  return [...out];
}

export class ClusterFacts {
  readonly nodes: Watched<V1Node>;
  private readonly serviceCidrs: Watched<V1ServiceCIDR>;
  private readonly apiEndpoints: Watched<V1EndpointSlice>;
  private readonly pods: Watched<V1Pod>;
  /** Each running pod's addresses, by namespace/name. */
  private readonly podIps = new Map<string, string[]>();
  private podTimer: NodeJS.Timeout | undefined;
  private readonly extraServiceCidrs: string[];
  private readonly extraPodCidrs: string[];
  /** Nodes without a podCIDR, as last warned about. */
  private warnedNoPodCidr = 0;

  constructor(
    api: ApiConnection,
    private readonly logger: Logger,
    onChange: () => void,
    options: ClusterFactsOptions = {},
  ) {
    this.extraServiceCidrs = options.serviceCidrs ?? [];
    this.extraPodCidrs = (options.podCidrs ?? []).filter((c) => parseCidr(c));
    this.nodes = new Watched<V1Node>({
      api,
      path: '/api/v1/nodes',
      logger,
      onChange: () => {
        this.checkPodCidrs();
        onChange();
      },
    });
    const onPods = options.onPods ?? onChange;
    this.pods = new Watched<V1Pod>({
      api,
      path: '/api/v1/pods',
      fieldSelector: RUNNING,
      lean: leanPod,
      logger,
      // A relist reports only what differs; other changes of a pod (its conditions) change nothing here.
      onChange: () => undefined,
      onEvent: (type, pod) => {
        const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
        const before = this.podIps.get(key) ?? [];
        const after = type === 'delete' ? [] : podAddresses(pod);
        if (after.length) this.podIps.set(key, after);
        else this.podIps.delete(key);
        if (before.join() !== after.join() && !this.podTimer)
          this.podTimer = setTimeout(() => {
            this.podTimer = undefined;
            onPods();
          }, POD_CHANGES_MS);
      },
    });
    this.serviceCidrs = new Watched<V1ServiceCIDR>({
      api,
      path: '/apis/networking.k8s.io/v1/servicecidrs',
      logger,
      onChange,
    });
    const selector = 'kubernetes.io/service-name=kubernetes';
    this.apiEndpoints = new Watched<V1EndpointSlice>({
      api,
      path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
      labelSelector: selector,
      logger,
      onChange,
    });
    this.apiServerUrlHost = hostOf(api.server);
  }

  private readonly apiServerUrlHost: string | null;

  start(): void {
    this.nodes.start();
    this.pods.start();
    this.serviceCidrs.start();
    this.apiEndpoints.start();
  }

  async synced(): Promise<void> {
    await Promise.all([this.nodes.synced, this.pods.synced, this.serviceCidrs.synced, this.apiEndpoints.synced]);
  }

  stop(): void {
    clearTimeout(this.podTimer);
    this.podTimer = undefined;
    this.nodes.stop();
    this.pods.stop();
    this.serviceCidrs.stop();
    this.apiEndpoints.stop();
  }

  /**
   * Nodes without a podCIDR mean a CNI that allocates pod addresses itself: then only the
   * running pods' addresses are known, not the pod network (an address a pod gets next is
   * protected once its status says so). Said once, and again when the count changes.
   */
  private checkPodCidrs(): void {
    if (this.extraPodCidrs.length) return;
    const all = this.nodes.list();
    const without = all.filter((n) => !n.spec?.podCIDR && !n.spec?.podCIDRs?.length);
    if (without.length === this.warnedNoPodCidr) return;
    this.warnedNoPodCidr = without.length;
    if (!without.length) return;
    this.logger.warn(
      { nodes: without.slice(0, 10).map((n) => n.metadata?.name), count: without.length, of: all.length },
      'Nodes carry no spec.podCIDR (a CNI that allocates pod addresses itself: Calico, Cilium cluster-pool, AWS VPC CNI, Azure CNI): ' +
        'pod addresses are protected from the running pods\' status.podIPs only; give the pod network\'s ranges with the chart\'s cluster.podCidrs (--pod-cidr)',
    );
  }

  facts(): Omit<ProtectedFacts, 'gateways' | 'dns' | 'hostAddresses'> {
    const nodes: string[] = [];
    const podCidrs: string[] = [...this.extraPodCidrs];
    for (const n of this.nodes.list()) {
      for (const a of n.status?.addresses ?? []) {
        const ip = normalizeIp(a.address);
        if (ip && (a.type === 'InternalIP' || a.type === 'ExternalIP')) nodes.push(ip);
      }
      for (const c of [...(n.spec?.podCIDRs ?? []), ...(n.spec?.podCIDR ? [n.spec.podCIDR] : [])]) if (parseCidr(c)) podCidrs.push(c);
    }
    const serviceCidrs = [...this.extraServiceCidrs];
    for (const s of this.serviceCidrs.list()) for (const c of s.spec?.cidrs ?? []) if (parseCidr(c)) serviceCidrs.push(c);
    const apiServer: string[] = this.apiServerUrlHost ? [this.apiServerUrlHost] : [];
    for (const slice of this.apiEndpoints.list())
      for (const e of slice.endpoints ?? []) for (const a of e.addresses ?? []) if (normalizeIp(a)) apiServer.push(normalizeIp(a)!);
    const pods = [...this.podIps.values()].flat();
    return { nodes, podCidrs, pods, serviceCidrs, apiServer };
  }
}

function hostOf(url: string | undefined): string | null {
  if (!url) return null;
  try {
    return normalizeIp(new URL(url).hostname.replace(/^\[|\]$/g, ''));
  } catch {
    return null;
  }
}
