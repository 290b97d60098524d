// The rendered chart against a real API server: every object, with default values and
// with every toggle on, passes a server-side dry run (schema, defaulting, admission,
// unknown fields are errors), after the chart's CRDs and stub monitoring CRDs are in.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ALL_ON, CHART, REPO, helmReady, renderChart } from '../../support/helm.js';
import { useControlPlane, type ControlPlane } from '../../support/control-plane.js';

const NS = 'portsentry';

async function dryRun(cp: ControlPlane, values: unknown): Promise<void> {
  const { text, docs } = await renderChart(values, { namespace: NS });
  const { stdout } = await cp.kubectl(['apply', '--dry-run=server', '--validate=strict', '-f', '-'], { input: text });
  const applied = stdout.split('\n').filter((l) => l.includes('(server dry run)'));
  assert.equal(applied.length, docs.length, `not every object was dry-run applied:\n${stdout}`);
}

describe('chart on a real API server (server-side dry run)', { concurrency: false }, () => {
  const env = useControlPlane(async (cp) => {
    await cp.kubectl(['apply', '-f', join(CHART, 'files', 'crds')]);
    await cp.kubectl(['apply', '-f', join(REPO, 'test', 'fixtures', 'monitoring-crds.yaml')]);
    await cp.kubectl(['wait', '--for=condition=Established', '--timeout=30s', 'crd', '--all']);
    await cp.kubectl(['create', 'namespace', NS]);
  });

  test('default values: every rendered object is accepted', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    await dryRun(cp, {});
  });

  test('every toggle on (outputs, ServiceMonitor, PrometheusRule, dashboard, keep): every object is accepted', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    await dryRun(cp, ALL_ON);
  });

  test('toggles off (no CRDs, no policy, no PDB, existing TLS Secret): every object is accepted', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    await dryRun(cp, {
      crds: { enabled: false },
      defaultPolicy: { enabled: false },
      operator: { podDisruptionBudget: { enabled: false }, tls: { existingSecret: 'my-cert' }, replicas: 1 },
      agent: { xtablesLock: false, priorityClassName: '' },
    });
  });

  test('the API server validates the default policy from values (a bad spec is refused, naming the field)', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    if (!helmReady(t)) return;
    const message = await dryRun(cp, { defaultPolicy: { spec: { tcp: { ports: [0] } } } }).then(
      () => '',
      (err: Error) => err.message,
    );
    assert.match(message, /spec\.tcp\.ports\[0\]/);
  });
});
