// A real `helm install`, `upgrade` and `uninstall` of the chart on a real API server (no
// nodes: pods are never scheduled, so this checks the objects, not the programs): the
// CRDs come first and the default policy hook after them, the TLS Secret survives an
// upgrade (lookup), and crds.keep decides whether uninstall leaves the CRDs.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ALL_ON, CHART, REPO, helm, helmReady, withValuesFile } from '../../support/helm.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';

const NS = 'kps-system';
const RELEASE = 'kps';
const CRDS = ['crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io'];

async function getJson<T>(cp: ControlPlane, args: string[]): Promise<T> {
  return JSON.parse((await cp.kubectl(['get', ...args, '-o', 'json'])).stdout) as T;
}

async function exists(cp: ControlPlane, args: string[]): Promise<boolean> {
  return cp.kubectl(['get', ...args, '-o', 'name']).then(
    () => true,
    (err: Error) => {
      if (/NotFound|not found/.test(err.message)) return false;
      throw err;
    },
  );
}

describe('helm install, upgrade, uninstall on a real API server', { concurrency: false }, () => {
  const env = useControlPlane(async (cp) => {
    await cp.kubectl(['apply', '-f', join(REPO, 'test', 'fixtures', 'monitoring-crds.yaml')]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
  });
  const h = (cp: ControlPlane, args: string[]) => helm([...args, '--namespace', NS], { kubeconfig: cp.kubeconfig });

  test('install: CRDs, every object, and the default policy (a hook after its CRD)', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    await withValuesFile(ALL_ON, (file) => h(cp, ['install', RELEASE, CHART, '--create-namespace', '-f', file]));
    const status = JSON.parse((await h(cp, ['status', RELEASE, '-o', 'json'])).stdout) as { info: { status: string } };
    assert.equal(status.info.status, 'deployed');

    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', ...CRDS]);
    for (const crd of CRDS) {
      const installed: { metadata: { annotations: Record<string, string> } } = await getJson(cp, [crd]);
      assert.equal(installed.metadata.annotations['helm.sh/resource-policy'], 'keep');
    }
    for (const kind of ['daemonset', 'deployment', 'poddisruptionbudget', 'service', 'serviceaccount', 'role', 'rolebinding', 'servicemonitor', 'prometheusrule', 'configmap']) {
      const { items } = await getJson<{ items: unknown[] }>(cp, ['-n', NS, kind, '-l', `app.kubernetes.io/instance=${RELEASE}`]);
      assert.ok(items.length > 0, `no ${kind} installed`);
    }
    // The hook created the policy; the API server filled in the defaults.
    const policy = await getJson<{ spec: { response: { tcp: string; udp: string; duration: string }; trigger: { count: number } } }>(cp, [
      'portsentrypolicy',
      `${RELEASE}-kube-portsentry-default`,
    ]);
    assert.equal(policy.spec.response.tcp, 'alert');
    assert.equal(policy.spec.response.duration, '1h');
    assert.equal(policy.spec.trigger.count, 0);
    // The installed CRD takes every mode, "off" included.
    await cp.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'kube-portsentry.io/v1alpha1',
        kind: 'PortSentryPolicy',
        metadata: { name: 'udp-only' },
        spec: { tcp: { mode: 'off' }, udp: { mode: 'stealth' } },
      }),
    });
  });

  test('upgrade: the generated TLS Secret is kept (lookup), new values reach the pods', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    type Secret = { data: Record<string, string> };
    const before = await getJson<Secret>(cp, ['-n', NS, 'secret', `${RELEASE}-kube-portsentry-operator-tls`]);
    assert.deepEqual(Object.keys(before.data).sort(), ['ca.crt', 'tls.crt', 'tls.key']);
    await h(cp, ['upgrade', RELEASE, CHART, '--reuse-values', '--set', 'operator.logLevel=debug']);
    const after = await getJson<Secret>(cp, ['-n', NS, 'secret', `${RELEASE}-kube-portsentry-operator-tls`]);
    assert.deepEqual(after.data, before.data, 'the upgrade replaced the certificate');
    const dep = await getJson<{ spec: { template: { spec: { containers: { args: string[] }[] } } } }>(cp, ['-n', NS, 'deployment', `${RELEASE}-kube-portsentry-operator`]);
    assert.ok(dep.spec.template.spec.containers[0]!.args.includes('--log-level=debug'));
    assert.ok(await exists(cp, ['portsentrypolicy', `${RELEASE}-kube-portsentry-default`]), 'the hook re-created the default policy');
  });

  test('uninstall keeps the CRDs and the objects in them when crds.keep is on, removes them when off', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    await h(cp, ['uninstall', RELEASE, '--wait', '--timeout', '60s']);
    assert.ok(!(await exists(cp, ['-n', NS, 'deployment', `${RELEASE}-kube-portsentry-operator`])));
    assert.ok(!(await exists(cp, ['clusterrole', `${RELEASE}-kube-portsentry-operator`])));
    for (const crd of CRDS) assert.ok(await exists(cp, [crd]), `${crd} was removed despite crds.keep`);
    assert.ok(await exists(cp, ['portsentrypolicy', 'udp-only']), 'a user policy went with the release');

    // Installed again (the release adopts the kept CRDs), then uninstalled without keep.
    await h(cp, ['install', RELEASE, CHART, '--set', 'crds.keep=false']);
    await h(cp, ['uninstall', RELEASE, '--wait', '--timeout', '60s']);
    for (const crd of CRDS) {
      for (let i = 0; await exists(cp, [crd]); i++) {
        assert.ok(i < 100, `${crd} still there 10 s after uninstall with crds.keep=false`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  });
});
