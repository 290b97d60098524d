// The network-policy outputs against models of each engine's documented semantics. The rule
// they must keep: traffic from a blocked source is denied, and no object of ours leaves
// traffic from any other source unmatched (which each engine would then drop), nor
// changes how the engine treats it. With nothing blocked, nothing is written.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { IpTrie } from '../../src/net/ip-trie.js';
import { renderCalico, renderCilium, renderNetworkPolicy } from '../../src/operator/outputs.js';

type Obj = { kind: string; metadata: { name: string; labels?: Record<string, string> }; spec: Record<string, unknown> };

const BLOCKED = ['192.0.2.1', '198.51.100.0/24', '2001:db8::1'];
/** Sources inside BLOCKED. */
const BLOCKED_SOURCES = ['192.0.2.1', '198.51.100.7', '2001:db8::1'];
const NOT_BLOCKED = ['192.0.2.2', '203.0.113.9', '2001:db8::2', '10.244.1.7'];

/**
 * Calico (docs.tigera.io, Tier reference and "Get started with policy tiers"): tiers are
 * evaluated by order, smallest first; the default tier (order 1,000,000) holds Kubernetes
 * NetworkPolicies and untiered Calico policies. In a tier that applies to the endpoint,
 * policies run by order and rules top to bottom: the first Allow or Deny decides, Pass
 * jumps to the next tier, and a tier that takes no action drops the packet.
 */
const CALICO_DEFAULT_TIER_ORDER = 1_000_000;
function calicoIngress(objects: Obj[], source: string): { verdict: 'deny' | 'allow' | 'next-tier' | 'dropped'; tierOrder: number; tier: string } {
  const policies = objects.filter((o) => o.kind === 'GlobalNetworkPolicy');
  assert.equal(policies.length, 1, 'one GlobalNetworkPolicy');
  const policy = policies[0]!.spec as { tier?: string; selector: string; types: string[]; ingress: { action: string; source?: { selector?: string } }[] };
  assert.equal(policy.selector, 'all()');
  assert.deepEqual(policy.types, ['Ingress'], 'egress left alone');
  const tier = policy.tier ?? 'default';
  const tierObject = objects.find((o) => o.kind === 'Tier' && o.metadata.name === tier);
  const tierOrder = tier === 'default' ? CALICO_DEFAULT_TIER_ORDER : ((tierObject?.spec.order as number | undefined) ?? Infinity);
  for (const rule of policy.ingress) {
    let matches = true;
    if (rule.source?.selector) {
      const m = /^([\w./-]+) == '([^']*)'$/.exec(rule.source.selector);
      assert.ok(m, `selector the model reads: ${rule.source.selector}`);
      const nets = objects
        .filter((o) => o.kind === 'GlobalNetworkSet' && o.metadata.labels?.[m[1]!] === m[2])
        .flatMap((o) => o.spec.nets as string[]);
      matches = new IpTrie(nets).has(source);
    }
    if (!matches) continue;
    if (rule.action === 'Deny') return { verdict: 'deny', tierOrder, tier };
    if (rule.action === 'Allow') return { verdict: 'allow', tierOrder, tier };
    if (rule.action === 'Pass') return { verdict: 'next-tier', tierOrder, tier };
  }
  return { verdict: 'dropped', tierOrder, tier };
}

/**
 * Cilium (docs.cilium.io, "Deny Policies" and the Rule reference): deny rules win over
 * allows; enableDefaultDeny, when not given, is true for each direction the policy has
 * rules in (ingressDeny included), which puts every selected endpoint in default deny.
 */
function ciliumIngress(policy: Obj, source: string): { denied: boolean; defaultDeny: boolean } {
  const spec = policy.spec as { ingress?: unknown[]; ingressDeny?: { fromCIDRSet?: { cidr: string }[] }[]; enableDefaultDeny?: { ingress?: boolean } };
  const hasRules = (spec.ingress?.length ?? 0) + (spec.ingressDeny?.length ?? 0) > 0;
  const defaultDeny = spec.enableDefaultDeny?.ingress ?? hasRules;
  const denied = (spec.ingressDeny ?? []).some((r) => new IpTrie((r.fromCIDRSet ?? []).map((c) => c.cidr)).has(source));
  return { denied, defaultDeny };
}

/**
 * Kubernetes NetworkPolicy (kubernetes.io, "Network Policies"): a pod selected for ingress
 * admits only what some policy allows. Whether ipBlock matches pod addresses is up to the
 * CNI (Cilium's does not), so the model lets it match only sources outside the cluster.
 */
function networkPolicyAdmits(np: Obj, source: { pod: boolean; address: string }): boolean {
  const spec = np.spec as { podSelector: unknown; ingress: { from: { ipBlock?: { cidr: string; except?: string[] }; namespaceSelector?: object; podSelector?: object }[] }[] };
  assert.deepEqual(spec.podSelector, {});
  return spec.ingress.some((rule) =>
    rule.from.some((peer) => {
      if (peer.namespaceSelector && Object.keys(peer.namespaceSelector).length === 0 && !peer.podSelector) return source.pod;
      if (!peer.ipBlock || source.pod) return false;
      return new IpTrie([peer.ipBlock.cidr]).has(source.address) && !new IpTrie(peer.ipBlock.except ?? []).has(source.address);
    }),
  );
}

describe('network-policy outputs', () => {
  test('Calico: blocked sources are denied; every other source passes to the next tier, ahead of the default tier', () => {
    const objects = renderCalico(BLOCKED) as Obj[];
    for (const source of BLOCKED_SOURCES) assert.equal(calicoIngress(objects, source).verdict, 'deny', source);
    for (const source of NOT_BLOCKED) {
      const r = calicoIngress(objects, source);
      assert.equal(r.verdict, 'next-tier', `${source} must not be left unmatched (end of tier drops it)`);
      // A Pass inside the default tier would skip the Kubernetes and Calico policies after it.
      assert.notEqual(r.tier, 'default', 'our Pass must not skip the default tier');
      assert.ok(r.tierOrder < CALICO_DEFAULT_TIER_ORDER, `tier order ${r.tierOrder} before the default tier`);
    }
  });

  test('Cilium: blocked sources are denied; no endpoint is put in default deny', () => {
    const policy = renderCilium(BLOCKED) as Obj;
    for (const source of BLOCKED_SOURCES) assert.equal(ciliumIngress(policy, source).denied, true, source);
    for (const source of NOT_BLOCKED) assert.deepEqual(ciliumIngress(policy, source), { denied: false, defaultDeny: false }, source);
  });

  test('NetworkPolicy: blocked sources are not admitted; every other source, pods included, is', () => {
    const np = renderNetworkPolicy('web', BLOCKED) as Obj;
    for (const address of BLOCKED_SOURCES) assert.equal(networkPolicyAdmits(np, { pod: false, address }), false, address);
    for (const address of NOT_BLOCKED) assert.equal(networkPolicyAdmits(np, { pod: false, address }), true, address);
    assert.equal(networkPolicyAdmits(np, { pod: true, address: '10.244.1.7' }), true, 'pods, whatever the CNI does with ipBlock');
  });

  test('nothing blocked: nothing is written', () => {
    assert.deepEqual(renderCalico([]), []);
    assert.equal(renderCilium([]), null);
    assert.equal(renderNetworkPolicy('web', []), null);
  });
});

test('outputs list the addresses as CIDRs by family', () => {
  const np = renderNetworkPolicy('web', ['192.0.2.1', '2001:db8::1', '10.0.0.0/8']) as { spec: { ingress: { from: { ipBlock: { except: string[] } }[] }[] } };
  assert.deepEqual(np.spec.ingress[0]!.from[0]!.ipBlock.except, ['10.0.0.0/8', '192.0.2.1/32']);
  assert.deepEqual(np.spec.ingress[0]!.from[1]!.ipBlock.except, ['2001:db8::1/128']);
  const cilium = renderCilium(['192.0.2.1']) as { spec: { ingressDeny: { fromCIDRSet: { cidr: string }[] }[] } };
  assert.deepEqual(cilium.spec.ingressDeny[0]!.fromCIDRSet, [{ cidr: '192.0.2.1/32' }]);
});
