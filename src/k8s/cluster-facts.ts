// What both agent and operator watch about the cluster itself: nodes (names, labels,
// addresses, pod CIDRs), the service CIDRs and the API server's endpoints. From these come
// the protected addresses and, for the operator, which policy applies where.
import type { V1EndpointSlice, V1Node, V1ServiceCIDR } from '@kubernetes/client-node';
import type { Logger } from '../log/logger.js';
import { normalizeIp, parseCidr } from '../net/ip.js';
import type { Kube } from './client.js';
import { Watched } from './informer.js';
import type { ProtectedFacts } from '../engine/protected-set.js';

export class ClusterFacts {
  readonly nodes: Watched<V1Node>;
  private readonly serviceCidrs: Watched<V1ServiceCIDR>;
  private readonly apiEndpoints: Watched<V1EndpointSlice>;

  constructor(
    kube: Kube,
    logger: Logger,
    onChange: () => void,
    /** Service CIDRs given on the command line (clusters without the ServiceCIDR API). */
    private readonly extraServiceCidrs: string[] = [],
  ) {
    const watch = kube.watch;
    this.nodes = new Watched<V1Node>({ watch, path: '/api/v1/nodes', list: () => kube.core.listNode(), logger, onChange });
    this.serviceCidrs = new Watched<V1ServiceCIDR>({
      watch,
      path: '/apis/networking.k8s.io/v1/servicecidrs',
      list: () => kube.networking.listServiceCIDR(),
      logger,
      onChange,
    });
    const selector = 'kubernetes.io/service-name=kubernetes';
    this.apiEndpoints = new Watched<V1EndpointSlice>({
      watch,
      path: '/apis/discovery.k8s.io/v1/namespaces/default/endpointslices',
      list: () => kube.discovery.listNamespacedEndpointSlice({ namespace: 'default', labelSelector: selector }),
      labelSelector: selector,
      logger,
      onChange,
    });
    this.apiServerUrlHost = hostOf(kube.kc.getCurrentCluster()?.server);
  }

  private readonly apiServerUrlHost: string | null;

  start(): void {
    this.nodes.start();
    this.serviceCidrs.start();
    this.apiEndpoints.start();
  }

  async synced(): Promise<void> {
    await Promise.all([this.nodes.synced, this.serviceCidrs.synced, this.apiEndpoints.synced]);
  }

  stop(): void {
    this.nodes.stop();
    this.serviceCidrs.stop();
    this.apiEndpoints.stop();
  }

  facts(): Omit<ProtectedFacts, 'gateways' | 'dns' | 'hostAddresses'> {
    const nodes: string[] = [];
    const podCidrs: string[] = [];
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
    return { nodes, podCidrs, serviceCidrs, apiServer };
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
