// The chart's alerts and dashboard: promtool (Debian's prometheus package) checks the
// rendered rules and runs a unit test for each alert; the dashboard is well-formed; and
// every metric the alerts and the dashboard query is one the code exports.
import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { Metrics } from '../../src/metrics/metrics.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import { runProgram } from '../../src/respond/run-program.js';
import { CHART, REPO, find, helmReady, renderChart } from '../../support/helm.js';
import { prerequisites } from '../../support/prereq.js';

type Rule = { alert?: string; record?: string; expr: string; for?: string; labels?: Record<string, string> };
type Group = { name: string; rules: Rule[] };

const PROMTOOL_TESTS = join(REPO, 'test', 'fixtures', 'prometheus', 'alerts.promtool.yaml');
const DASHBOARD = join(CHART, 'files', 'dashboards', 'kube-portsentry.json');

async function renderedGroups(values: unknown = {}): Promise<Group[]> {
  const { docs } = await renderChart({ prometheusRule: { enabled: true }, ...(values as object) });
  return (find(docs, 'PrometheusRule').spec as { groups: Group[] }).groups;
}

/** Runs fn in a temp dir holding the rendered rules as rules.yaml. */
async function withRules<T>(groups: Group[], fn: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-rules-'));
  try {
    await writeFile(join(dir, 'rules.yaml'), stringify({ groups }));
    return await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- metric names in PromQL ----------------------------------------------------------

const PROMQL_WORDS = new Set(['and', 'or', 'unless', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'inf', 'nan']);

/**
 * The metric names a PromQL expression selects: identifiers left once strings, label
 * matchers, ranges and grouping label lists are removed, that are neither keywords nor
 * functions (followed by "(").
 */
function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, ' ')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of stripped.matchAll(/(?<![\w$.])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = stripped.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after) || PROMQL_WORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names];
}

/** Names a registry exposes, with a histogram's _bucket, _sum and _count series. */
async function exportedNames(registry: { getMetricsAsJSON(): Promise<{ name: string; type: unknown }[]> | { name: string; type: unknown }[] }): Promise<Set<string>> {
  const names = new Set<string>();
  for (const m of await registry.getMetricsAsJSON()) {
    names.add(m.name);
    if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(m.name + s);
    if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(m.name + s);
  }
  return names;
}

describe('alerts and dashboard', { concurrency: false }, () => {
  test('metricNames finds the selectors in PromQL and nothing else', () => {
    assert.deepEqual(
      metricNames('max by (node) (max_over_time(portsentry_agent_info[1h])) unless max by (node) (portsentry_agent_info{node=~"$node"})'),
      ['portsentry_agent_info'],
    );
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="y"}[$__rate_interval]))) / on (instance) group_left b > 0.8 or vector(0)'),
      ['a_bucket', 'b'],
    );
    assert.deepEqual(metricNames('(sum(portsentry_leader) or vector(0)) < 1'), ['portsentry_leader']);
  });

  test('promtool check rules accepts the rendered rules (default and custom values)', async (t) => {
    if (!prerequisites(t, { tools: ['promtool'] }) || !helmReady(t)) return;
    for (const values of [{}, { prometheusRule: { enabled: true, scanBurstThreshold: 500, blocklistCapacityRatio: 0.95, alertLabels: { team: 'security' } } }]) {
      const groups = await renderedGroups(values);
      await withRules(groups, async (dir) => {
        const { stdout } = await runProgram(['promtool', 'check', 'rules', join(dir, 'rules.yaml')], { timeoutMs: 30_000 });
        assert.match(stdout, /SUCCESS: 9 rules found/);
      });
    }
    const custom = (await renderedGroups({ prometheusRule: { enabled: true, scanBurstThreshold: 500, alertLabels: { team: 'security' } } }))[0]!.rules;
    assert.match(custom.find((r) => r.alert === 'PortSentryScanBurst')!.expr, /> 500$/);
    assert.ok(custom.every((r) => r.labels?.team === 'security' && r.labels.severity));
  });

  test('promtool test rules: every alert fires in its unit test and stays quiet in another', async (t) => {
    if (!prerequisites(t, { tools: ['promtool'] }) || !helmReady(t)) return;
    const groups = await renderedGroups();
    const alerts = groups.flatMap((g) => g.rules.map((r) => r.alert)).filter((a): a is string => !!a);
    const expected = [
      'PortSentryScanBurst',
      'PortSentryAgentMissing',
      'PortSentryAgentsAbsent',
      'PortSentryActionFailures',
      'PortSentryReportsDropped',
      'PortSentryBlockRateLimited',
      'PortSentryClusterBlockRateLimited',
      'PortSentryBlocklistNearCapacity',
      'PortSentryNoLeader',
    ];
    assert.deepEqual(alerts, expected);
    type Case = { alertname: string; exp_alerts: unknown[] };
    const spec = parse(await readFile(PROMTOOL_TESTS, 'utf8')) as { tests: { alert_rule_test: Case[] }[] };
    const cases = spec.tests.flatMap((x) => x.alert_rule_test);
    for (const alert of alerts) {
      assert.ok(cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0), `${alert}: no unit test where it fires`);
      assert.ok(cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0), `${alert}: no unit test where it stays quiet`);
    }
    await withRules(groups, async (dir) => {
      await copyFile(PROMTOOL_TESTS, join(dir, 'alerts.promtool.yaml'));
      const { stdout } = await runProgram(['promtool', 'test', 'rules', join(dir, 'alerts.promtool.yaml')], { timeoutMs: 60_000 });
      assert.match(stdout, /SUCCESS/);
    });
  });

  test('the dashboard is a well-formed Grafana dashboard covering what the issue asks', async () => {
    type Target = { expr: string; refId: string; datasource: { uid: string } };
    type Panel = { id: number; type: string; title: string; gridPos: { x: number; y: number; w: number; h: number }; targets?: Target[] };
    const dash = JSON.parse(await readFile(DASHBOARD, 'utf8')) as {
      uid: string;
      title: string;
      schemaVersion: number;
      panels: Panel[];
      templating: { list: { name: string; type: string }[] };
    };
    assert.equal(dash.uid, 'kube-portsentry');
    assert.ok(dash.schemaVersion >= 36);
    assert.deepEqual(dash.templating.list.map((v) => [v.name, v.type]), [['datasource', 'datasource'], ['node', 'query']]);
    const ids = dash.panels.map((p) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
    for (const p of dash.panels) {
      assert.ok(p.gridPos.x >= 0 && p.gridPos.w > 0 && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: outside the 24-column grid`);
      if (p.type === 'row') continue;
      assert.ok(p.targets?.length, `${p.title}: no queries`);
      const refs = p.targets.map((x) => x.refId);
      assert.equal(new Set(refs).size, refs.length, `${p.title}: duplicate refIds`);
      for (const target of p.targets) {
        assert.ok(target.expr.trim(), `${p.title}: empty query`);
        assert.equal(target.datasource.uid, '${datasource}', `${p.title}: not on the datasource variable`);
        let depth = 0;
        for (const ch of target.expr) {
          depth += ch === '(' ? 1 : ch === ')' ? -1 : 0;
          assert.ok(depth >= 0, `${p.title}: unbalanced parentheses in ${target.expr}`);
        }
        assert.equal(depth, 0, `${p.title}: unbalanced parentheses in ${target.expr}`);
      }
    }
    // What the issue lists, each by the metric that shows it.
    const all = dash.panels.flatMap((p) => p.targets ?? []).map((x) => x.expr).join('\n');
    for (const needed of [
      'portsentry_scans_detected_total', // scans over time
      'portsentry_probes_total', // top scan types
      'portsentry_blockedhosts', // blocked hosts (cluster)
      'portsentry_blocked_hosts', // blocked hosts (per node)
      'portsentry_block_latency_seconds_bucket', // detection-to-block latency
      'portsentry_agent_info', // agent health by node
      'portsentry_report_queue_sources', // report queue
      'portsentry_reports_dropped_total', // report drops
      'portsentry_leader', // operator leader
      'portsentry_reconcile_total', // reconciles
    ]) {
      assert.ok(all.includes(needed), `the dashboard does not show ${needed}`);
    }
    assert.match(all, /histogram_quantile\(0\.5,/);
    assert.match(all, /histogram_quantile\(0\.99,/);
  });

  test('every metric the alerts and the dashboard use is exported by the code', async (t) => {
    if (!helmReady(t)) return;
    // The agent's and the standalone sentry's metrics, and the operator's.
    const exported = await exportedNames(new Metrics(true).registry);
    for (const n of await exportedNames(new OperatorMetrics(true).registry)) exported.add(n);

    const used = new Map<string, string>();
    const dash = JSON.parse(await readFile(DASHBOARD, 'utf8')) as {
      panels: { title: string; targets?: { expr: string }[] }[];
      templating: { list: { name: string; definition?: string }[] };
    };
    for (const p of dash.panels) for (const target of p.targets ?? []) for (const n of metricNames(target.expr)) used.set(n, `dashboard panel "${p.title}"`);
    for (const v of dash.templating.list) {
      const m = v.definition && /^label_values\((\w+),\s*\w+\)$/.exec(v.definition);
      if (m) used.set(m[1]!, `dashboard variable ${v.name}`);
    }
    for (const g of await renderedGroups()) for (const r of g.rules) for (const n of metricNames(r.expr)) used.set(n, `alert ${r.alert}`);

    assert.ok(used.size >= 20, `only ${used.size} metric names found; is the PromQL parsing broken?`);
    const unknown = [...used].filter(([n]) => !exported.has(n)).map(([n, where]) => `${n} (${where})`);
    assert.deepEqual(unknown, [], 'metrics used but not exported');
  });
});
