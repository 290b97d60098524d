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
 * A NetworkPolicy for one namespace: every pod admits ingress from every pod and from every
 * address except the blocked ones; nothing while nothing is blocked. Known limits (see
 * README): NetworkPolicies are additive, so another policy that allows a blocked address
 * still lets it in; ipBlock applies to traffic as the CNI sees its source (after any SNAT);
 * and selecting every pod makes the namespace "isolated for ingress", which this policy's
 * rule undoes at once. Pods are admitted by a namespaceSelector peer, since whether ipBlock
 * matches pod addresses is left to the CNI (Cilium's does not).
 */
export function renderNetworkPolicy(namespace: string, addresses: readonly string[]): Record<string, unknown> | null {
  const { v4, v6 } = split(addresses);
  if (!v4.length && !v6.length) return null;
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
            { namespaceSelector: {} },
          ],
        },
      ],
    },
  };
}

/** Our Calico tier: its name, and an order ahead of the default tier (1,000,000). */
export const CALICO_TIER = 'kube-portsentry';
const CALICO_TIER_ORDER = 100;

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
}

/**
 * The Calico objects renderCalico writes, in the order to delete them (policy, set, tier),
 * and the default-tier policy of earlier versions, which denied all other ingress.
 */
export function calicoObjectRefs(): ObjectRef[] {
  const apiVersion = 'crd.projectcalico.org/v1';
  return [
    { apiVersion, kind: 'GlobalNetworkPolicy', metadata: { name: `${CALICO_TIER}.${OUTPUT_NAME}` } },
    { apiVersion, kind: 'GlobalNetworkPolicy', metadata: { name: OUTPUT_NAME } },
    { apiVersion, kind: 'GlobalNetworkSet', metadata: { name: OUTPUT_NAME } },
    { apiVersion, kind: 'Tier', metadata: { name: CALICO_TIER } },
  ];
}

export const CILIUM_REF: ObjectRef = { apiVersion: 'cilium.io/v2', kind: 'CiliumClusterwideNetworkPolicy', metadata: { name: OUTPUT_NAME } };

/**
 * Calico: a GlobalNetworkSet of the blocked addresses and, in a tier of our own, a
 * GlobalNetworkPolicy that denies them and passes everything else on; nothing while nothing
 * is blocked. Calico drops what a tier that applies to an endpoint takes no action on, and
 * Pass jumps to the next tier (Tier reference, docs.tigera.io): so the trailing Pass leaves
 * all other traffic to the tiers after ours. The tier is our own because a Pass inside the
 * default tier would skip the Kubernetes and Calico policies ordered after it there.
 */
export function renderCalico(addresses: readonly string[]): Record<string, unknown>[] {
  const { v4, v6 } = split(addresses);
  if (!v4.length && !v6.length) return [];
  return [
    {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'Tier',
      metadata: { name: CALICO_TIER, labels },
      spec: { order: CALICO_TIER_ORDER },
    },
    {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'GlobalNetworkSet',
      metadata: { name: OUTPUT_NAME, labels: { ...labels, 'kube-portsentry.io/blocked': 'true' } },
      spec: { nets: [...v4, ...v6] },
    },
    {
      apiVersion: 'crd.projectcalico.org/v1',
      kind: 'GlobalNetworkPolicy',
      // A policy in a tier other than default is named <tier>.<name>.
      metadata: { name: `${CALICO_TIER}.${OUTPUT_NAME}`, labels },
      spec: {
        tier: CALICO_TIER,
        order: 0,
        selector: 'all()',
        types: ['Ingress'],
        ingress: [{ action: 'Deny', source: { selector: "kube-portsentry.io/blocked == 'true'" } }, { action: 'Pass' }],
      },
    },
  ];
}

/**
 * Cilium: one clusterwide policy with ingressDeny from the blocked CIDRs; nothing while
 * nothing is blocked. enableDefaultDeny is off for both directions: left out, it defaults
 * to true for a direction the policy has rules in, ingressDeny included, and every selected
 * endpoint would drop what no other policy allows (Rule reference, docs.cilium.io; the
 * field exists from Cilium 1.16).
 */
export function renderCilium(addresses: readonly string[]): Record<string, unknown> | null {
  const { v4, v6 } = split(addresses);
  if (!v4.length && !v6.length) return null;
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name: OUTPUT_NAME, labels },
    spec: {
      endpointSelector: {},
      enableDefaultDeny: { ingress: false, egress: false },
      ingressDeny: [{ fromCIDRSet: [...v4, ...v6].map((cidr) => ({ cidr })) }],
    },
  };
}
