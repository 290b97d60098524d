// The Helm chart, rendered and linted by a real helm: what each component is allowed to
// do (security contexts, RBAC, volumes), the container contract (arguments, probes),
// the CRDs equal to the generated ones, the generated TLS material, and values checked
// by values.schema.json.
import assert from 'node:assert/strict';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { isMap, isScalar, parseDocument, type Node } from 'yaml';
import { allCrds } from '../../src/k8s/crds.js';
import { LOG_LEVELS } from '../../src/log/logger.js';
import { ALL_ON, CHART, REPO, find, helm, helmFailure, helmReady, renderChart, withValuesFile, type Manifest } from '../../support/helm.js';

const NS = 'portsentry';
const AGENT = 'kps-kube-portsentry-agent';
const OPERATOR = 'kps-kube-portsentry-operator';

type Container = {
  name: string;
  args: string[];
  env: { name: string; value?: string; valueFrom?: { fieldRef: { fieldPath: string } } }[];
  ports: { name: string; containerPort: number }[];
  securityContext: Record<string, unknown>;
  livenessProbe: { httpGet: { path: string; port: string } };
  readinessProbe: { httpGet: { path: string; port: string } };
  volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
  resources?: unknown;
};
type PodSpec = {
  containers: Container[];
  volumes: Record<string, unknown>[];
  securityContext: Record<string, unknown>;
  [key: string]: unknown;
};
const podSpec = (m: Manifest) => (m.spec as { template: { spec: PodSpec } }).template.spec;

type Rule = { apiGroups?: string[]; resources?: string[]; nonResourceURLs?: string[]; verbs: string[] };
/** Rules as "group/resource: verbs" (or "URL: verbs") lines, one per resource, sorted. */
const ruleLines = (m: Manifest) =>
  (m.rules as Rule[])
    .flatMap((r) => {
      const verbs = [...r.verbs].sort().join(',');
      if (r.nonResourceURLs) return r.nonResourceURLs.map((url) => `${url}: ${verbs}`);
      return (r.apiGroups ?? []).flatMap((g) => (r.resources ?? []).map((res) => `${g || 'core'}/${res}: ${verbs}`));
    })
    .sort();

const RW = 'create,delete,get,list,patch,update,watch';
const OPERATOR_CLUSTER_RULES = [
  '/.well-known/openid-configuration: get',
  '/openid/v1/jwks: get',
  'authentication.k8s.io/tokenreviews: create',
  'core/nodes: get,list,watch',
  'core/pods: list,watch',
  `kube-portsentry.io/blockedhosts: ${RW}`,
  'kube-portsentry.io/blockedhosts/status: get,patch,update',
  'kube-portsentry.io/portsentrypolicies: get,list,watch',
  'kube-portsentry.io/portsentrypolicies/status: get,patch,update',
  'networking.k8s.io/servicecidrs: get,list,watch',
].sort();
const OUTPUT_RULES = [
  `cilium.io/ciliumclusterwidenetworkpolicies: ${RW}`,
  `crd.projectcalico.org/globalnetworkpolicies: ${RW}`,
  `crd.projectcalico.org/globalnetworksets: ${RW}`,
  `crd.projectcalico.org/tiers: ${RW}`,
  `networking.k8s.io/networkpolicies: ${RW}`,
].sort();

describe('chart', { concurrency: false }, () => {
  test('helm lint --strict passes with the default values and with every toggle on', async (t) => {
    if (!helmReady(t)) return;
    const plain = await helm(['lint', '--strict', CHART]);
    assert.match(plain.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    await withValuesFile(ALL_ON, async (file) => {
      const all = await helm(['lint', '--strict', CHART, '-f', file]);
      assert.match(all.stdout, /0 chart\(s\) failed/);
    });
  });

  test('default render: the agent DaemonSet keeps to its contract and its privileges', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart();
    const ds = find(docs, 'DaemonSet', AGENT);
    assert.equal(ds.metadata.namespace, NS);
    assert.deepEqual((ds.spec as { updateStrategy: unknown }).updateStrategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 1 } });
    const pod = podSpec(ds);
    assert.equal(pod.hostNetwork, true);
    assert.equal(pod.dnsPolicy, 'Default', 'the node\'s resolvers in the pod\'s resolv.conf');
    assert.equal(pod.priorityClassName, 'system-node-critical');
    assert.deepEqual(pod.tolerations, [{ operator: 'Exists' }]);
    assert.equal(pod.serviceAccountName, AGENT);
    assert.deepEqual(pod.securityContext, { seccompProfile: { type: 'RuntimeDefault' } });
    assert.equal(pod.hostPID, undefined);
    assert.equal(pod.hostIPC, undefined);
    const [c, ...others] = pod.containers;
    assert.equal(others.length, 0);
    assert.deepEqual(c!.args, [
      'agent',
      '--node-name=$(NODE_NAME)',
      '--namespace=$(POD_NAMESPACE)',
      '--instance=kps',
      `--operator-url=https://${OPERATOR}.${NS}.svc:8443`,
      '--operator-ca=/var/run/kube-portsentry/ca/ca.crt',
      '--token-file=/var/run/kube-portsentry/token/token',
      '--node-resolv-conf=/etc/resolv.conf',
      '--metrics-address=0.0.0.0:9109',
      '--log-level=info',
    ]);
    assert.deepEqual(
      c!.env.map((e) => [e.name, e.valueFrom?.fieldRef.fieldPath ?? e.value]),
      [
        ['NODE_NAME', 'spec.nodeName'],
        ['POD_NAMESPACE', 'metadata.namespace'],
        // agent.runtimeEnv, measured by the benchmarks (README, Benchmarks).
        ['MALLOC_MMAP_THRESHOLD_', '131072'],
        ['NODE_OPTIONS', '--max-semi-space-size=1'],
      ],
    );
    assert.deepEqual(c!.ports, [{ name: 'metrics', containerPort: 9109, protocol: 'TCP' }]);
    assert.deepEqual([c!.livenessProbe.httpGet, c!.readinessProbe.httpGet], [{ path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);
    assert.deepEqual(c!.securityContext, {
      runAsUser: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_RAW', 'NET_ADMIN'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.ok(c!.resources, 'agent resources are set');

    // The agent sees the CA and nothing else of the TLS Secret, and a token for the operator alone.
    const volumes = Object.fromEntries(pod.volumes.map((v) => [v.name as string, v]));
    assert.deepEqual(volumes['report-ca'], {
      name: 'report-ca',
      secret: { secretName: `${OPERATOR}-tls`, items: [{ key: 'ca.crt', path: 'ca.crt' }] },
    });
    assert.deepEqual(volumes['report-token'], {
      name: 'report-token',
      projected: { sources: [{ serviceAccountToken: { audience: 'kube-portsentry', expirationSeconds: 3600, path: 'token' } }] },
    });
    const mounts = Object.fromEntries(c!.volumeMounts.map((m) => [m.mountPath, m]));
    assert.equal(mounts['/var/run/kube-portsentry/ca']?.name, 'report-ca');
    assert.equal(mounts['/var/run/kube-portsentry/token']?.name, 'report-token');
    // Every hostPath is the xtables lock, nothing broader.
    const hostPaths = pod.volumes.filter((v) => v.hostPath).map((v) => (v.hostPath as { path: string }).path);
    assert.deepEqual(hostPaths, ['/run/xtables.lock']);
    // The default policy watches in stealth mode, which those two capabilities cover.
    const policy = find(docs, 'PortSentryPolicy').spec as { tcp: unknown; udp: unknown };
    assert.deepEqual([policy.tcp, policy.udp], [{ mode: 'stealth' }, { mode: 'stealth' }]);
    // Bind mode below port 1024 is opted into with one more capability, and only that one.
    const bind = find((await renderChart({ agent: { extraCapabilities: ['NET_BIND_SERVICE'] } })).docs, 'DaemonSet', AGENT);
    const added = (podSpec(bind).containers[0]!.securityContext as { capabilities: { add: string[] } }).capabilities.add;
    assert.deepEqual(added, ['NET_RAW', 'NET_ADMIN', 'NET_BIND_SERVICE']);
  });

  test('default render: the operator Deployment runs two non-root replicas with a PDB', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart();
    const dep = find(docs, 'Deployment', OPERATOR);
    assert.equal((dep.spec as { replicas: number }).replicas, 2);
    const pod = podSpec(dep);
    assert.equal(pod.serviceAccountName, OPERATOR);
    assert.equal(pod.hostNetwork, undefined);
    assert.deepEqual(pod.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      fsGroup: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const c = pod.containers[0]!;
    assert.deepEqual(c.args, [
      'operator',
      '--namespace=$(POD_NAMESPACE)',
      '--identity=$(POD_NAME)',
      '--listen-address=0.0.0.0:8443',
      '--tls-cert=/var/run/kube-portsentry/tls/tls.crt',
      '--tls-key=/var/run/kube-portsentry/tls/tls.key',
      '--metrics-address=0.0.0.0:9110',
      `--agent-service-account=${AGENT}`,
      '--token-audience=kube-portsentry',
      '--lease-duration=15s',
      '--log-level=info',
    ]);
    assert.deepEqual(
      c.env.map((e) => [e.name, e.valueFrom?.fieldRef.fieldPath]),
      [['POD_NAME', 'metadata.name'], ['POD_NAMESPACE', 'metadata.namespace']],
    );
    assert.deepEqual(c.securityContext, {
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    assert.deepEqual([c.livenessProbe.httpGet, c.readinessProbe.httpGet], [{ path: '/healthz', port: 'metrics' }, { path: '/readyz', port: 'metrics' }]);
    assert.deepEqual(
      c.ports.map((p) => [p.name, p.containerPort]),
      [['reports', 8443], ['metrics', 9110]],
    );
    // Both components run the same image: the tag defaults to appVersion, a digest pins it.
    assert.equal((c as unknown as { image: string }).image, 'kube-portsentry:0.1.0');
    const digest = `sha256:${'ab'.repeat(32)}`;
    const pinned = (await renderChart({ image: { repository: 'registry.example/kps', digest } })).docs;
    for (const kind of ['Deployment', 'DaemonSet']) {
      assert.equal((podSpec(find(pinned, kind)).containers[0] as unknown as { image: string }).image, `registry.example/kps:0.1.0@${digest}`);
    }
    const pdb = find(docs, 'PodDisruptionBudget', OPERATOR);
    assert.equal((pdb.spec as { minAvailable: number }).minAvailable, 1);
    assert.deepEqual(
      (pdb.spec as { selector: unknown }).selector,
      (dep.spec as { selector: unknown }).selector,
      'the PDB selects the operator pods',
    );
  });

  test('Services: the operator on 8443 and 9110, the agents headless on 9109', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart();
    type Svc = { spec: { clusterIP?: string; selector: Record<string, string>; ports: { name: string; port: number; targetPort: string }[] } };
    const op = find(docs, 'Service', OPERATOR) as unknown as Svc;
    assert.deepEqual(op.spec.ports.map((p) => [p.name, p.port, p.targetPort]), [['reports', 8443, 'reports'], ['metrics', 9110, 'metrics']]);
    assert.equal(op.spec.selector['app.kubernetes.io/component'], 'operator');
    const agent = find(docs, 'Service', AGENT) as unknown as Svc;
    assert.equal(agent.spec.clusterIP, 'None');
    assert.deepEqual(agent.spec.ports.map((p) => [p.name, p.port]), [['metrics', 9109]]);
    assert.equal(agent.spec.selector['app.kubernetes.io/component'], 'agent');
  });

  test('NetworkPolicy: every pod-network workload is selected by one; the operator admits reports and metrics only', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart();
    type Np = { metadata: { namespace: string }; spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: { ports: { port: string }[]; from: Record<string, unknown>[] }[] } };
    const policies = docs.filter((d) => d.kind === 'NetworkPolicy') as unknown as Np[];
    // What CKV2_K8S_6 asks: no pod without a NetworkPolicy. The agent is host-network, where
    // NetworkPolicy never applies.
    for (const w of docs.filter((d) => ['Deployment', 'DaemonSet', 'StatefulSet'].includes(d.kind))) {
      const pod = podSpec(w);
      if (pod.hostNetwork) continue;
      const labels = (w.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
      const selected = policies.some((p) => p.metadata.namespace === w.metadata.namespace && Object.entries(p.spec.podSelector.matchLabels).every(([k, v]) => labels[k] === v));
      assert.ok(selected, `${w.kind} ${w.metadata.name} has no NetworkPolicy`);
    }
    const np = find(docs, 'NetworkPolicy', OPERATOR) as unknown as Np;
    assert.deepEqual(np.spec.policyTypes, ['Ingress']);
    assert.deepEqual(np.spec.ingress.map((r) => r.ports.map((p) => p.port)), [['reports'], ['metrics']]);
    assert.deepEqual(np.spec.ingress[0]!.from, [{ ipBlock: { cidr: '0.0.0.0/0' } }, { ipBlock: { cidr: '::/0' } }]);
    assert.deepEqual(np.spec.ingress[1]!.from, [{ namespaceSelector: {} }]);
    const narrowed = await renderChart({ operator: { networkPolicy: { reportSources: ['10.0.0.0/16'], metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] } } });
    const n = find(narrowed.docs, 'NetworkPolicy', OPERATOR) as unknown as Np;
    assert.deepEqual(n.spec.ingress[0]!.from, [{ ipBlock: { cidr: '10.0.0.0/16' } }]);
    assert.deepEqual(n.spec.ingress[1]!.from, [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }]);
    const off = await renderChart({ operator: { networkPolicy: { enabled: false } } });
    assert.ok(!off.docs.some((d) => d.kind === 'NetworkPolicy'));
  });

  test('RBAC: exactly the rules each component needs; output rules only when the output is on', async (t) => {
    if (!helmReady(t)) return;
    const plain = (await renderChart()).docs;
    assert.deepEqual(ruleLines(find(plain, 'ClusterRole', OPERATOR)), OPERATOR_CLUSTER_RULES);
    assert.deepEqual(ruleLines(find(plain, 'Role', OPERATOR)), [
      'coordination.k8s.io/leases: create,get,list,patch,update,watch',
      `core/configmaps: ${RW}`,
    ]);
    assert.deepEqual(ruleLines(find(plain, 'ClusterRole', AGENT)), [
      'core/nodes: get,list,watch',
      'core/pods: list,watch',
      'kube-portsentry.io/blockedhosts: get,list,watch',
      'networking.k8s.io/servicecidrs: get,list,watch',
    ]);
    assert.deepEqual(ruleLines(find(plain, 'Role', AGENT)), ['core/configmaps: get,list,watch', 'core/services: get']);
    assert.deepEqual((find(plain, 'Role', AGENT).rules as { resourceNames?: string[] }[])[1]!.resourceNames, [OPERATOR], 'the operator Service only');
    // In "default" only: the API server's EndpointSlices, and the operator's Events.
    const inDefault = (name: string) => {
      const role = find(plain, 'Role', name);
      assert.equal(role.metadata.namespace, 'default');
      return ruleLines(role);
    };
    assert.deepEqual(inDefault(`${OPERATOR}-default`), ['core/events: create,patch', 'discovery.k8s.io/endpointslices: get,list,watch']);
    assert.deepEqual(inDefault(`${AGENT}-default`), ['discovery.k8s.io/endpointslices: get,list,watch']);
    const roles = plain.filter((d) => d.kind === 'Role' || d.kind === 'ClusterRole').map((d) => d.metadata.name);
    assert.equal(roles.length, 6);
    for (const [kind, name, sa] of [
      ['ClusterRoleBinding', OPERATOR, OPERATOR],
      ['RoleBinding', OPERATOR, OPERATOR],
      ['RoleBinding', `${OPERATOR}-default`, OPERATOR],
      ['ClusterRoleBinding', AGENT, AGENT],
      ['RoleBinding', AGENT, AGENT],
      ['RoleBinding', `${AGENT}-default`, AGENT],
    ] as const) {
      const b = find(plain, kind, name) as unknown as { roleRef: { name: string }; subjects: { kind: string; name: string; namespace: string }[] };
      assert.equal(b.roleRef.name, name);
      assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: sa, namespace: NS }]);
    }

    const all = (await renderChart(ALL_ON)).docs;
    assert.deepEqual(ruleLines(find(all, 'ClusterRole', OPERATOR)), [...OPERATOR_CLUSTER_RULES, ...OUTPUT_RULES].sort());
    const args = podSpec(find(all, 'Deployment', OPERATOR)).containers[0]!.args;
    assert.deepEqual(args.slice(-3), ['--network-policy-namespaces=default,web', '--calico', '--cilium']);
    // Optional flags: service and pod CIDRs to both, a fixed firewall to the agent.
    const flags = (await renderChart({ cluster: { serviceCidrs: ['10.96.0.0/16', 'fd00:10:96::/112'], podCidrs: ['192.168.0.0/16'] }, agent: { firewall: 'iptables' } })).docs;
    assert.deepEqual(podSpec(find(flags, 'DaemonSet')).containers[0]!.args.slice(-3), ['--firewall=iptables', '--service-cidr=10.96.0.0/16,fd00:10:96::/112', '--pod-cidr=192.168.0.0/16']);
    assert.deepEqual(podSpec(find(flags, 'Deployment')).containers[0]!.args.slice(-2), ['--service-cidr=10.96.0.0/16,fd00:10:96::/112', '--pod-cidr=192.168.0.0/16']);
    // Commands: no flag unless enabled with programs; then the same allowlist to both.
    for (const docs of [flags, (await renderChart({ agent: { commands: { enabled: true, allowed: [] } } })).docs, (await renderChart({ agent: { commands: { allowed: ['/bin/true'] } } })).docs])
      for (const kind of ['DaemonSet', 'Deployment']) assert.ok(!podSpec(find(docs, kind)).containers[0]!.args.some((a) => a.startsWith('--allowed-commands')), kind);
    const commands = (await renderChart({ agent: { commands: { enabled: true, allowed: ['/usr/local/bin/notify', '/bin/true'] } } })).docs;
    for (const kind of ['DaemonSet', 'Deployment'])
      assert.equal(podSpec(find(commands, kind)).containers[0]!.args.at(-1), '--allowed-commands=/usr/local/bin/notify,/bin/true', kind);
    // hosts.deny files likewise: none unless enabled with paths.
    for (const docs of [flags, (await renderChart({ agent: { hostsDeny: { allowed: ['/host/etc/hosts.deny'] } } })).docs])
      for (const kind of ['DaemonSet', 'Deployment']) assert.ok(!podSpec(find(docs, kind)).containers[0]!.args.some((a) => a.startsWith('--allowed-hosts-deny')), kind);
    const hostsDeny = (await renderChart({ agent: { hostsDeny: { enabled: true, allowed: ['/host/etc/hosts.deny'] } } })).docs;
    for (const kind of ['DaemonSet', 'Deployment'])
      assert.equal(podSpec(find(hostsDeny, kind)).containers[0]!.args.at(-1), '--allowed-hosts-deny=/host/etc/hosts.deny', kind);
    // Anti-spoofing: on by default (no flag); agent.antiSpoofing false turns it off.
    assert.ok(!podSpec(find(all, 'DaemonSet')).containers[0]!.args.includes('--no-anti-spoofing'));
    const noAntiSpoofing = (await renderChart({ agent: { antiSpoofing: false } })).docs;
    assert.ok(podSpec(find(noAntiSpoofing, 'DaemonSet')).containers[0]!.args.includes('--no-anti-spoofing'));
    // Each output alone adds its own rule only.
    const calicoOnly = (await renderChart({ outputs: { calico: { enabled: true } } })).docs;
    assert.deepEqual(
      ruleLines(find(calicoOnly, 'ClusterRole', OPERATOR)),
      [...OPERATOR_CLUSTER_RULES, ...OUTPUT_RULES.filter((r) => r.startsWith('crd.projectcalico.org'))].sort(),
    );
  });

  test('every RBAC rule in the templates says what uses it', async () => {
    for (const file of ['operator-rbac.yaml', 'agent-rbac.yaml']) {
      const lines = (await readFile(join(CHART, 'templates', file), 'utf8')).split('\n');
      lines.forEach((line, i) => {
        if (!/^\s*- apiGroups:/.test(line)) return;
        let j = i - 1;
        while (j >= 0 && /^\s*\{\{-? (if|end)/.test(lines[j]!)) j--;
        assert.match(lines[j] ?? '', /^\s*# \S/, `${file}:${i + 1}: rule without a comment naming its user`);
      });
    }
  });

  test('the TLS Secret: a CA and a certificate for the operator Service that chain and match', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart();
    const secret = find(docs, 'Secret', `${OPERATOR}-tls`) as unknown as { type: string; data: Record<string, string> };
    assert.equal(secret.type, 'kubernetes.io/tls');
    assert.deepEqual(Object.keys(secret.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    const pem = (k: string) => Buffer.from(secret.data[k]!, 'base64').toString();
    const ca = new X509Certificate(pem('ca.crt'));
    const cert = new X509Certificate(pem('tls.crt'));
    assert.ok(ca.ca, 'ca.crt is a CA');
    assert.ok(cert.checkIssued(ca) && cert.verify(ca.publicKey), 'tls.crt is signed by ca.crt');
    assert.ok(cert.checkPrivateKey(createPrivateKey(pem('tls.key'))), 'tls.key belongs to tls.crt');
    // The name the agents dial (--operator-url) is in the certificate.
    const host = new URL(podSpec(find(docs, 'DaemonSet', AGENT)).containers[0]!.args.find((a) => a.startsWith('--operator-url='))!.slice(15)).hostname;
    assert.ok(cert.checkHost(host), `${host} not in ${cert.subjectAltName}`);
    assert.ok(cert.checkHost(`${OPERATOR}.${NS}.svc.cluster.local`));
    // Both pod templates carry the CA's checksum, so a new CA restarts them.
    const sums = ['DaemonSet', 'Deployment'].map(
      (k) => (find(docs, k).spec as { template: { metadata: { annotations: Record<string, string> } } }).template.metadata.annotations['checksum/report-ca'],
    );
    assert.match(sums[0]!, /^[0-9a-f]{64}$/);
    assert.equal(sums[0], sums[1]);

    // With an existing Secret the chart makes none and mounts that one.
    const own = (await renderChart({ operator: { tls: { existingSecret: 'my-cert' } } })).docs;
    assert.equal(own.filter((d) => d.kind === 'Secret').length, 0);
    assert.equal((podSpec(find(own, 'Deployment')).volumes.find((v) => v.name === 'tls')!.secret as { secretName: string }).secretName, 'my-cert');
    assert.equal((podSpec(find(own, 'DaemonSet')).volumes.find((v) => v.name === 'report-ca')!.secret as { secretName: string }).secretName, 'my-cert');
  });

  test('CRDs: the chart renders the generated crds/*.yaml, kept on uninstall unless told otherwise', async (t) => {
    // The chart's copies are byte for byte the generated files (`npm run crds` writes both).
    const files = (await readdir(join(REPO, 'crds'))).filter((f) => f.endsWith('.yaml')).sort();
    assert.deepEqual((await readdir(join(CHART, 'files', 'crds'))).sort(), files);
    for (const f of files) {
      assert.equal(
        await readFile(join(CHART, 'files', 'crds', f), 'utf8'),
        await readFile(join(REPO, 'crds', f), 'utf8'),
        `charts/kube-portsentry/files/crds/${f} differs from crds/${f}: run npm run crds`,
      );
    }
    if (!helmReady(t)) return;
    const rendered = (await renderChart()).docs.filter((d) => d.kind === 'CustomResourceDefinition');
    const generated = allCrds().map((c) => JSON.parse(JSON.stringify(c)) as Manifest);
    assert.equal(rendered.length, generated.length);
    for (const want of generated) {
      const got = rendered.find((d) => d.metadata.name === want.metadata.name);
      assert.ok(got, `${want.metadata.name} not rendered`);
      assert.deepEqual(got.spec, want.spec, `${want.metadata.name}: rendered spec differs from the generator's`);
      assert.equal(got.metadata.annotations?.['helm.sh/resource-policy'], 'keep');
      assert.equal(got.metadata.labels?.['app.kubernetes.io/managed-by'], 'Helm');
    }
    const notKept = (await renderChart({ crds: { keep: false } })).docs.filter((d) => d.kind === 'CustomResourceDefinition');
    assert.equal(notKept.length, generated.length);
    assert.ok(notKept.every((d) => d.metadata.annotations?.['helm.sh/resource-policy'] === undefined));
    const off = (await renderChart({ crds: { enabled: false } })).docs;
    assert.equal(off.filter((d) => d.kind === 'CustomResourceDefinition').length, 0);
  });

  test('the default policy is a post-install/upgrade hook with the spec from values; off when disabled', async (t) => {
    if (!helmReady(t)) return;
    const spec = { tcp: { mode: 'stealth' }, trigger: { count: 2 }, response: { tcp: 'block' } };
    const { docs } = await renderChart({ defaultPolicy: { enabled: true, spec } });
    const policy = find(docs, 'PortSentryPolicy', 'kps-kube-portsentry-default');
    assert.equal(policy.metadata.namespace, undefined, 'cluster-scoped');
    // The chart's default response stays alert-only, merged under the values given.
    assert.deepEqual(policy.spec, { ...spec, udp: { mode: 'stealth' }, response: { tcp: 'block', udp: 'alert' } });
    assert.equal(policy.metadata.annotations?.['helm.sh/hook'], 'post-install,post-upgrade');
    const off = (await renderChart({ defaultPolicy: { enabled: false } })).docs;
    assert.equal(off.filter((d) => d.kind === 'PortSentryPolicy').length, 0);
  });

  test('monitoring objects only when enabled; the dashboard ConfigMap carries the sidecar label', async (t) => {
    if (!helmReady(t)) return;
    const plain = (await renderChart()).docs;
    for (const kind of ['ServiceMonitor', 'PrometheusRule', 'ConfigMap']) {
      assert.equal(plain.filter((d) => d.kind === kind).length, 0, `${kind} rendered by default`);
    }
    const all = (await renderChart(ALL_ON)).docs;
    find(all, 'ServiceMonitor');
    const rule = find(all, 'PrometheusRule');
    assert.equal(rule.metadata.labels?.release, 'prometheus');
    const cm = find(all, 'ConfigMap', 'kps-kube-portsentry-dashboard');
    assert.equal(cm.metadata.labels?.grafana_dashboard, '1');
    assert.equal(cm.metadata.annotations?.grafana_folder, 'Security');
    const json = (cm as unknown as { data: Record<string, string> }).data['kube-portsentry.json']!;
    assert.deepEqual(JSON.parse(json), JSON.parse(await readFile(join(CHART, 'files', 'dashboards', 'kube-portsentry.json'), 'utf8')));
    const relabelled = (await renderChart({ grafanaDashboard: { enabled: true, label: 'dashboards.example.com/kind', labelValue: 'grafana', namespace: 'monitoring' } })).docs;
    const cm2 = find(relabelled, 'ConfigMap');
    assert.equal(cm2.metadata.labels?.['dashboards.example.com/kind'], 'grafana');
    assert.equal(cm2.metadata.namespace, 'monitoring');
  });

  test('cert-manager issues the report certificate (the GitOps path): no generated Secret, names the agents dial', async (t) => {
    if (!helmReady(t)) return;
    const { docs } = await renderChart({ operator: { tls: { certManager: { enabled: true } } } });
    assert.ok(!docs.some((d) => d.kind === 'Secret' && d.metadata.name === `${OPERATOR}-tls`), 'a generated TLS Secret next to cert-manager');
    type Certificate = { spec: { secretName: string; isCA?: boolean; dnsNames?: string[]; issuerRef: { name: string; kind: string }; ca?: unknown } };
    const serving = find(docs, 'Certificate', OPERATOR) as unknown as Certificate;
    assert.equal(serving.spec.secretName, `${OPERATOR}-tls`);
    const host = new URL(podSpec(find(docs, 'DaemonSet', AGENT)).containers[0]!.args.find((a) => a.startsWith('--operator-url='))!.slice(15)).hostname;
    assert.ok(serving.spec.dnsNames?.includes(host), `${host} not in ${serving.spec.dnsNames?.join(', ')}`);
    // Without an issuer of the user's: a self-signed CA made by cert-manager, and an Issuer on it.
    const ca = find(docs, 'Certificate', `${OPERATOR}-ca`) as unknown as Certificate;
    assert.equal(ca.spec.isCA, true);
    const caIssuer = find(docs, 'Issuer', serving.spec.issuerRef.name) as unknown as { spec: { ca: { secretName: string } } };
    assert.equal(caIssuer.spec.ca.secretName, ca.spec.secretName);
    assert.equal((find(docs, 'Issuer', ca.spec.issuerRef.name).spec as { selfSigned?: unknown }).selfSigned !== undefined, true);
    // Certificates renew live (the operator and agents reload their files): no restart annotation.
    for (const k of ['DaemonSet', 'Deployment'])
      assert.equal((find(docs, k).spec as { template: { metadata: { annotations?: Record<string, string> } } }).template.metadata.annotations?.['checksum/report-ca'], undefined);
    // An issuer of the user's: only the serving Certificate, on it.
    const own = await renderChart({ operator: { tls: { certManager: { enabled: true, issuerRef: { name: 'corp-ca', kind: 'ClusterIssuer' } } } } });
    assert.deepEqual((find(own.docs, 'Certificate', OPERATOR) as unknown as Certificate).spec.issuerRef, { name: 'corp-ca', kind: 'ClusterIssuer', group: 'cert-manager.io' });
    assert.deepEqual(own.docs.filter((d) => d.kind === 'Certificate' || d.kind === 'Issuer').map((d) => d.metadata.name), [OPERATOR]);
    // Two sources of one certificate: refused.
    const both = await withValuesFile({ operator: { tls: { existingSecret: 'mine', certManager: { enabled: true } } } }, (file) => helmFailure(['template', 'kps', CHART, '-f', file]));
    assert.match(both, /existingSecret and operator\.tls\.certManager\.enabled/);
  });

  test('values.schema.json rejects each bad values file, naming the field, in lint and in template', async (t) => {
    if (!helmReady(t)) return;
    const dir = join(REPO, 'test', 'fixtures', 'chart-values');
    const files = (await readdir(dir)).filter((f) => f.endsWith('.yaml')).sort();
    assert.ok(files.length >= 15, `only ${files.length} bad values files`);
    for (const f of files) {
      const path = join(dir, f);
      const expected = /^# rejected with: (.+)$/m.exec(await readFile(path, 'utf8'))?.[1];
      assert.ok(expected, `${f}: no "# rejected with:" line`);
      for (const command of [['template', 'kps', CHART, '-f', path], ['lint', CHART, '-f', path]]) {
        const message = await helmFailure(command);
        assert.ok(message, `${f}: helm ${command[0]} accepted it`);
        assert.ok(message.includes(expected), `${f}: helm ${command[0]}'s message does not contain ${expected}:\n${message}`);
      }
    }
  });

  test('values.schema.json: log levels are the ones the code accepts; every values.yaml key is documented', async () => {
    const schema = JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as {
      definitions: { logLevel: { enum: string[] } };
    };
    assert.deepEqual(schema.definitions.logLevel.enum, [...LOG_LEVELS]);

    // Every field the schema defines has a comment above it in values.yaml; free-form
    // values (resources, nodeSelector, the policy spec) are documented by their key.
    type S = { $ref?: string; properties?: Record<string, S>; additionalProperties?: unknown };
    const resolve = (x: S): S => (x.$ref ? resolve((schema.definitions as unknown as Record<string, S>)[x.$ref.split('/').at(-1)!]!) : x);
    const doc = parseDocument(await readFile(join(CHART, 'values.yaml'), 'utf8'));
    const undocumented: string[] = [];
    const walk = (node: Node | null | undefined, sch: S, path: string) => {
      // Only closed objects are fields all the way down; open ones (the policy spec) are values.
      if (!isMap(node) || !sch.properties || sch.additionalProperties !== false) return;
      node.items.forEach((pair, i) => {
        const key = isScalar(pair.key) ? String(pair.key.value) : '?';
        // The yaml parser puts the comment above a map's first key on the map itself.
        const comment = (pair.key as Node | null)?.commentBefore ?? (i === 0 ? node.commentBefore : undefined);
        if (!comment?.trim()) undocumented.push(`${path}${key}`);
        const sub = sch.properties![key];
        if (!sub) undocumented.push(`${path}${key} (not in values.schema.json)`);
        else walk(pair.value as Node, resolve(sub), `${path}${key}.`);
      });
    };
    walk(doc.contents, schema as unknown as S, '');
    assert.deepEqual(undocumented, []);
  });
});
