// The operator's and agent's pure parts: policy selection, cross-node correlation, the
// report format, the report queue, object names, protected addresses and the labels of
// the operator's API request counter.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { ReportQueue } from '../../src/agent/report-queue.js';
import { watchBackoffMs } from '../../src/k8s/backoff.js';
import { requestLabels } from '../../src/k8s/client.js';
import { blockedHostName, canonicalAddress, nodePolicyConfigMapName } from '../../src/k8s/objects.js';
import { ProtectedSet, emptyFacts } from '../../src/engine/protected-set.js';
import { MAX_REPORT_BYTES, parseReport, reportEnvelopeBytes, type SourceReport } from '../../src/k8s/report.js';
import { Correlator } from '../../src/operator/correlator.js';
import { renderCilium, renderNetworkPolicy } from '../../src/operator/outputs.js';
import { matchesSelector, resolveNodePolicies, type Candidate, type NodeLabels } from '../../src/operator/selection.js';

describe('policy selection', () => {
  const labels = { zone: 'a', role: 'edge', gpu: '' };
  test('matchLabels and every operator', () => {
    assert.ok(matchesSelector(labels, { matchExpressions: [] }));
    assert.ok(matchesSelector(labels, { matchLabels: { zone: 'a' }, matchExpressions: [] }));
    assert.ok(!matchesSelector(labels, { matchLabels: { zone: 'b' }, matchExpressions: [] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'role', operator: 'In', values: ['edge', 'x'] }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'role', operator: 'NotIn', values: ['edge'] }] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'missing', operator: 'NotIn', values: ['edge'] }] }));
    assert.ok(matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'Exists' }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'gpu', operator: 'DoesNotExist' }] }));
    assert.ok(!matchesSelector(labels, { matchExpressions: [{ key: 'missing', operator: 'In', values: ['a'] }] }));
  });
  test('priority, then age, then name decides; unselected nodes get nothing', () => {
    const c = (name: string, priority: number, created: number, matchLabels: Record<string, string> = {}): Candidate => ({
      name,
      priority,
      created,
      selector: { matchLabels, matchExpressions: [] },
    });
    const nodes: NodeLabels[] = [
      { name: 'n1', labels: { zone: 'a' } },
      { name: 'n2', labels: { zone: 'b' } },
      { name: 'n3', labels: {} },
    ];
    const m = resolveNodePolicies([c('all', 0, 100), c('zone-a', 10, 200, { zone: 'a' }), c('old', 0, 50, { zone: 'b' })], nodes);
    assert.deepEqual(Object.fromEntries(m), { n1: 'zone-a', n2: 'old', n3: 'all' });
    const tie = resolveNodePolicies([c('b', 1, 10), c('a', 1, 10)], nodes.slice(0, 1));
    assert.equal(tie.get('n1'), 'a');
    assert.equal(resolveNodePolicies([c('z', 0, 1, { zone: 'q' })], nodes).size, 0);
  });
});

const report = (source: string, ports: number[], time = 1000): SourceReport => ({
  source,
  probes: ports.map((port) => ({ protocol: 'tcp' as const, port, type: 'syn', time })),
  count: ports.length,
  firstSeen: time,
  lastSeen: time,
  verified: false,
  blocked: false,
});

describe('cluster-wide correlation', () => {
  test('one port on each of three nodes passes a trigger of 2; one node alone does not', () => {
    const c = new Correlator(100);
    const trigger = { count: 2, windowMs: 60_000 };
    assert.equal(c.observe('n1', 'p', report('192.0.2.1', [79]), trigger, 1000).triggered, false);
    assert.equal(c.observe('n2', 'p', report('192.0.2.1', [79]), trigger, 1000).triggered, false);
    const r = c.observe('n3', 'p', report('192.0.2.1', [11]), trigger, 1000);
    assert.equal(r.triggered, true);
    assert.deepEqual([...r.activity.nodes].sort(), ['n1', 'n2', 'n3']);
    // The same port again on the same node is not a new touch.
    assert.equal(c.observe('n1', 'p', report('192.0.2.2', [79, 79]), trigger, 1000).activity.touches.size, 1);
  });
  test('touches older than the window are forgotten; the source cap holds', () => {
    const c = new Correlator(3);
    const trigger = { count: 1, windowMs: 1000 };
    c.observe('n1', 'p', report('192.0.2.1', [1], 0), trigger, 0);
    assert.equal(c.observe('n2', 'p', report('192.0.2.1', [2], 5000), trigger, 5000).triggered, false);
    for (let i = 0; i < 10; i++) c.observe('n1', 'p', report(`192.0.2.${10 + i}`, [1]), trigger, 6000);
    assert.equal(c.size, 3);
    assert.equal(c.evicted, 8);
  });
  test('a source over 10,000 ports on 3 nodes keeps a bounded list of touches, and still passes the largest trigger', () => {
    const c = new Correlator(10);
    const trigger = { count: 255, windowMs: 60_000 };
    const ports = Array.from({ length: 10_000 }, (_, i) => i + 1);
    let last;
    for (const node of ['n1', 'n2', 'n3'])
      for (let i = 0; i < ports.length; i += 256) last = c.observe(node, 'p', report('192.0.2.1', ports.slice(i, i + 256)), trigger, 1000);
    assert.ok(last!.activity.touches.size <= 256, `${last!.activity.touches.size} touches kept for one source`);
    assert.equal(last!.triggered, true);
    // Touches expire oldest first as new ones come: one probe a minute later counts alone.
    assert.equal(c.observe('n1', 'p', report('192.0.2.1', [1], 62_000), trigger, 62_000).activity.touches.size, 1);
  });
});

describe('watch retry backoff', () => {
  test('doubles from 0.5 s, never waits more than 15 s, jitter keeps half to all of it', () => {
    assert.equal(watchBackoffMs(0, 0.999999), 500);
    assert.equal(watchBackoffMs(0, 0), 250);
    assert.equal(watchBackoffMs(3, 0.999999), 4000);
    for (let failures = 0; failures < 100; failures++)
      for (const r of [0, 0.5, 0.999999]) assert.ok(watchBackoffMs(failures, r) <= 15_000 && watchBackoffMs(failures, r) >= 250);
    assert.equal(watchBackoffMs(10, 0.999999), 15_000);
    assert.equal(watchBackoffMs(10, 0), 7_500);
  });
});

describe('report format', () => {
  const good = { node: 'n1', policy: 'p', sources: [report('2001:DB8::1', [22])] };
  test('a valid report parses, addresses normalized', () => {
    assert.equal(parseReport(JSON.stringify(good)).sources[0]!.source, '2001:db8::1');
  });
  test('a node\'s reason for its detection being off is one line of printable text', () => {
    const text = 'boom\u001b[31m\r\nDetecting=True\u0000\u0085\u2028x\u007f';
    assert.equal(parseReport(JSON.stringify({ ...good, detectionOff: text })).detectionOff, 'boom [31m  Detecting=True   x ');
  });
  test('each bad field is named', () => {
    const bad: [unknown, RegExp][] = [
      ['not json', /not JSON/],
      [[], /report: must be an object/],
      [{ ...good, node: '' }, /Error: node:/],
      [{ ...good, sources: [{ ...report('x', []) }] }, /sources\[0\]\.source: must be an IP/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [0]) }] }, /sources\[0\]\.probes\[0\]\.port/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), probes: [{ protocol: 'icmp', port: 1, type: 'syn', time: 1 }] }] }, /protocol/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), probes: [{ protocol: 'tcp', port: 1, type: '$(rm)', time: 1 }] }] }, /unknown probe type/],
      [{ ...good, sources: Array.from({ length: 1001 }, () => report('192.0.2.1', [1])) }, /at most 1000/],
      [{ ...good, sources: [{ ...report('192.0.2.1', [1]), verified: 'yes' }] }, /verified/],
    ];
    for (const [input, message] of bad)
      assert.throws(() => parseReport(typeof input === 'string' ? input : JSON.stringify(input)), message, JSON.stringify(input).slice(0, 80));
  });
  test('random bodies never crash the parser: it returns or throws an Error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.jsonValue().map((v) => JSON.stringify({ node: 'n', policy: 'p', sources: [v] }))), (text) => {
        try {
          parseReport(text);
        } catch (err) {
          assert.ok(err instanceof Error && err.message.length > 0);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('report queue', () => {
  test('aggregates per source, drops the oldest when full, takes in order', () => {
    const q = new ReportQueue(2);
    for (let i = 0; i < 1000; i++) q.add('192.0.2.1', { protocol: 'tcp', port: 1 + (i % 3), type: 'syn', time: i }, false, false);
    q.add('192.0.2.2', { protocol: 'udp', port: 53, type: 'udp', time: 1 }, false, true);
    q.add('192.0.2.3', { protocol: 'udp', port: 53, type: 'udp', time: 1 }, true, false);
    assert.equal(q.size, 2);
    assert.equal(q.dropped, 1);
    const batch = q.take(MAX_REPORT_BYTES);
    assert.deepEqual(batch.map((b) => b.source), ['192.0.2.2', '192.0.2.3']);
    assert.equal(batch[0]!.blocked, true);
    q.putBack(batch);
    assert.equal(q.size, 2);
  });
  test('a forged sweep (1,000 sources, 15 ports each) is taken in reports under the 1 MiB limit, none lost', () => {
    const q = new ReportQueue(5000);
    const node = 'a-node-name-of-some-length';
    for (let i = 0; i < 1000; i++)
      for (let p = 0; p < 15; p++)
        q.add(`2001:db8:ffff:ffff:ffff:ffff:${(i >> 8).toString(16)}:${(i & 255).toString(16)}`, { protocol: 'tcp', port: 60000 + p, type: 'syn', time: 1_700_000_000_000 + i }, false, false);
    const sent = new Set<string>();
    let reports = 0;
    while (q.size > 0) {
      const body = JSON.stringify({ node, policy: 'default', sources: q.take(MAX_REPORT_BYTES - reportEnvelopeBytes(node, 'default')) });
      assert.ok(Buffer.byteLength(body) <= MAX_REPORT_BYTES, `report ${reports} is ${Buffer.byteLength(body)} bytes`);
      for (const s of parseReport(body).sources) sent.add(s.source);
      reports++;
    }
    assert.equal(sent.size, 1000);
    assert.ok(reports >= 2);
  });
  test('one source with a thousand ports keeps a bounded list', () => {
    const q = new ReportQueue(10);
    for (let port = 1; port <= 1000; port++) q.add('192.0.2.1', { protocol: 'tcp', port, type: 'syn', time: port }, false, false);
    const [r] = q.take(MAX_REPORT_BYTES);
    assert.equal(r!.count, 1000);
    assert.equal(r!.probes.length, 256);
  });
});

describe('names and protected addresses', () => {
  test('BlockedHost and ConfigMap names are valid DNS names', () => {
    assert.equal(blockedHostName('198.51.100.7'), 'v4-198-51-100-7');
    assert.equal(blockedHostName('10.0.0.0/8'), 'v4-10-0-0-0-8');
    assert.equal(blockedHostName('2001:db8::1'), 'v6-2001-db8--1');
    assert.match(blockedHostName('::'), /^v6-[a-z0-9-]+[a-z0-9]$/);
    assert.match(nodePolicyConfigMapName('Node_With.Odd.Chars-'.repeat(20)), /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/);
    fc.assert(
      fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (ip) => {
        const name = blockedHostName(ip);
        assert.match(name, /^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/, ip);
      }),
    );
    assert.equal(canonicalAddress('2001:DB8::1/128'), '2001:db8::1');
  });
  test('a protected address, or a CIDR containing one, is refused', () => {
    const p = new ProtectedSet({ ...emptyFacts(), nodes: ['10.0.0.5'], podCidrs: ['10.244.0.0/16'], dns: ['2001:db8::53'] });
    assert.equal(p.reason('10.0.0.5'), 'nodes');
    assert.equal(p.reason('10.244.3.4'), 'podCidrs');
    assert.equal(p.reason('10.0.0.0/8'), 'nodes');
    assert.equal(p.reason('0.0.0.0/0'), 'cloud-metadata', 'everything contains an always-protected range first');
    assert.equal(p.reason('2001:db8::/64'), 'dns');
    assert.equal(p.reason('192.0.2.1'), null);
  });
  test('outputs list the addresses as CIDRs by family', () => {
    const np = renderNetworkPolicy('web', ['192.0.2.1', '2001:db8::1', '10.0.0.0/8']) as { spec: { ingress: { from: { ipBlock: { except: string[] } }[] }[] } };
    assert.deepEqual(np.spec.ingress[0]!.from[0]!.ipBlock.except, ['10.0.0.0/8', '192.0.2.1/32']);
    assert.deepEqual(np.spec.ingress[0]!.from[1]!.ipBlock.except, ['2001:db8::1/128']);
    const cilium = renderCilium(['192.0.2.1']) as { spec: { ingressDeny: { fromCIDRSet: { cidr: string }[] }[] } };
    assert.deepEqual(cilium.spec.ingressDeny[0]!.fromCIDRSet, [{ cidr: '192.0.2.1/32' }]);
  });
});

describe('API request labels (portsentry_operator_api_requests_total)', () => {
  const server = 'https://127.0.0.1:6443';
  test('verbs as the audit log names them', () => {
    const cases: [string, string, string, string][] = [
      ['GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', 'list', 'blockedhosts'],
      ['GET', '/apis/kube-portsentry.io/v1alpha1/blockedhosts?watch=true&resourceVersion=5', 'watch', 'blockedhosts'],
      ['GET', '/api/v1/namespaces/kube-portsentry/configmaps?labelSelector=a%3Db', 'list', 'configmaps'],
      ['GET', '/apis/coordination.k8s.io/v1/namespaces/kube-portsentry/leases/kube-portsentry-operator', 'get', 'leases'],
      ['PUT', '/apis/coordination.k8s.io/v1/namespaces/kube-portsentry/leases/kube-portsentry-operator', 'update', 'leases'],
      ['POST', '/apis/authentication.k8s.io/v1/tokenreviews', 'create', 'tokenreviews'],
      ['POST', '/api/v1/namespaces/default/events', 'create', 'events'],
      ['PATCH', '/apis/kube-portsentry.io/v1alpha1/blockedhosts/v4-198-51-100-7/status', 'patch', 'blockedhosts/status'],
      ['DELETE', '/apis/kube-portsentry.io/v1alpha1/blockedhosts/v4-198-51-100-7', 'delete', 'blockedhosts'],
      ['DELETE', '/apis/kube-portsentry.io/v1alpha1/blockedhosts', 'deletecollection', 'blockedhosts'],
      ['GET', '/api/v1/nodes', 'list', 'nodes'],
      ['GET', '/api/v1/namespaces/kube-portsentry', 'get', 'namespaces'],
      ['GET', '/version', 'get', 'nonresource'],
    ];
    for (const [method, path, verb, resource] of cases)
      assert.deepEqual(requestLabels(method, `${server}${path}`), { verb, resource }, `${method} ${path}`);
    // Paths without a server (the watch's) read the same.
    assert.deepEqual(requestLabels('GET', '/api/v1/nodes?watch=1'), { verb: 'watch', resource: 'nodes' });
  });
  test('names, namespaces and addresses never become label values', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z0-9-]{1,30}$/), fc.stringMatching(/^[a-z0-9-]{1,30}$/), fc.constantFrom('GET', 'PUT', 'PATCH', 'DELETE'), (ns, name, method) => {
        const { resource } = requestLabels(method, `${server}/api/v1/namespaces/${ns}/configmaps/${name}`);
        assert.equal(resource, 'configmaps');
      }),
    );
  });
});
