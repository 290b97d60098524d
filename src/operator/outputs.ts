// Optional outputs that carry the cluster's blocks into network policy engines, for traffic
// the node firewall does not see (or clusters that want the CNI to enforce it too). Pure
// renderers: BlockedHost addresses in, objects out. Every object carries our owner label so
// stale ones can be found and removed.
import { parseCidr } from '../net/ip.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../k8s/objects.js';

export const OUTPUT_NAME = 'kube-portsentry-blocked';
const labels = { [LABEL_MANAGED_BY]: MANAGED_BY };

function split(addresses: readonly string[]): { v4: string[]; v6: string[] } {
  const v4: string[] = [];
  const v6: string[] = [];
  for (const a of [...addresses].sort()) {
    const c = parseCidr(a);
    if (!c) continue;
    const cidr = a.includes('/') ? a : `${a}/${c.family === 4 ? 32 : 128}`;
    (c.family === 4 ? v4 : v6).push(cidr);
  }
  return { v4, v6 };
}

/**
 * A NetworkPolicy for one namespace: every pod accepts ingress from anywhere except the
 * blocked addresses. Known limits (see README): NetworkPolicies are additive, so another
 * policy that allows a blocked address still lets it in; ipBlock applies to traffic as the
 * CNI sees its source (after any SNAT); and selecting every pod makes the namespace
 * "isolated for ingress", which this policy's allow-all rule immediately undoes.
 */
export function renderNetworkPolicy(namespace: string, addresses: readonly string[]): Record<string, unknown> {
  const { v4, v6 } = split(addresses);
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: OUTPUT_NAME, namespace, labels },
    spec: {
      podSelector: {},
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            { ipBlock: { cidr: '0.0.0.0/0', ...(v4.length ? { except: v4 } : {}) } },
            { ipBlock: { cidr: '::/0', ...(v6.length ? { except: v6 } : {}) } },
          ],
        },
      ],
    },
  };
}

/** Calico: a GlobalNetworkSet of the blocked addresses and a GlobalNetworkPolicy denying them first. */
export function renderCalico(addresses: readonly string[]): Record<string, unknown>[] {
  const { v4, v6 } = split(addresses);
  return [
    {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'GlobalNetworkSet',
      metadata: { name: OUTPUT_NAME, labels: { ...labels, 'kube-portsentry.io/blocked': 'true' } },
      spec: { nets: [...v4, ...v6] },
    },
    {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'GlobalNetworkPolicy',
      metadata: { name: OUTPUT_NAME, labels },
      spec: {
        order: 0,
        selector: 'all()',
        types: ['Ingress'],
        ingress: [{ action: 'Deny', source: { selector: "kube-portsentry.io/blocked == 'true'" } }],
      },
    },
  ];
}

/** Cilium: one clusterwide policy with ingressDeny from the blocked CIDRs. */
export function renderCilium(addresses: readonly string[]): Record<string, unknown> {
  const { v4, v6 } = split(addresses);
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: OUTPUT_NAME, labels },
    spec: {
      endpointSelector: {},
      ingressDeny: [{ fromCIDRSet: [...v4, ...v6].map((cidr) => ({ cidr })) }],
    },
  };
}
