// Counters the alerts take increase() of must exist at 0 before their first increment:
// Prometheus cannot see the increment that creates a series, so an alert on the first scan
// would otherwise wait for the second (the real-cluster suite found the scan-burst alert
// silent after one scan).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Metrics, RESPONSE_ACTIONS } from '../../src/metrics/metrics.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';

test('agent counters the alerts watch start at 0 for every label value', async () => {
  const text = await new Metrics(false).registry.metrics();
  for (const protocol of ['tcp', 'udp']) assert.match(text, new RegExp(`^portsentry_scans_detected_total\\{protocol="${protocol}"\\} 0$`, 'm'));
  for (const reason of ['policy', 'unverified', 'rate-limited']) assert.match(text, new RegExp(`^portsentry_alerts_total\\{reason="${reason}"\\} 0$`, 'm'));
  for (const action of RESPONSE_ACTIONS) assert.match(text, new RegExp(`^portsentry_action_errors_total\\{action="${action}"\\} 0$`, 'm'));
  assert.match(text, /^portsentry_reports_dropped_total 0$/m);
});

test('operator counters the alerts watch start at 0', async () => {
  const text = await new OperatorMetrics(false).registry.metrics();
  for (const protocol of ['tcp', 'udp']) assert.match(text, new RegExp(`^portsentry_cluster_scans_detected_total\\{protocol="${protocol}"\\} 0$`, 'm'));
});
