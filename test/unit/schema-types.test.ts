// The TypeScript policy types and the schema (runtime validator and CRD) describe the same
// fields: a complete PolicySpec literal (the compiler rejects a missing or extra field)
// must have exactly the schema's keys at every level.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Schema } from '../../src/policy/schema.js';
import { specSchema } from '../../src/policy/spec-schema.js';
import type { PolicySpec, ProtocolSpec } from '../../src/policy/types.js';
import { validateSpec } from '../../src/policy/validate.js';

const protocol: ProtocolSpec = { mode: 'stealth', ports: [1, '10-20'], advancedLimit: 2048, exclude: [113] };
const complete: PolicySpec = {
  nodeSelector: {
    matchLabels: { 'kubernetes.io/os': 'linux' },
    matchExpressions: [{ key: 'node-role.kubernetes.io/edge', operator: 'Exists' }],
  },
  priority: 10,
  tcp: protocol,
  udp: { ...protocol, mode: 'off' },
  trigger: { count: 3, window: '10m', maxTrackedSources: 1000 },
  ignore: ['192.0.2.0/24', '2001:db8::/32'],
  response: {
    tcp: 'block',
    udp: 'command',
    scope: 'node',
    duration: '2h',
    verifiedOnly: true,
    clusterEvidence: 'corroborated',
    maxBlocksPerMinute: 10,
    firewall: 'iptables',
    kernelFastPath: false,
    route: { enabled: true, command: ['/sbin/ip', 'route', 'add', 'blackhole', '$TARGET$'] },
    hostsDeny: { enabled: true, path: '/etc/hosts.deny', line: 'ALL: $TARGET$' },
    command: ['/usr/local/bin/notify', '$TARGET$', '$PORT$', '$MODE$'],
    runCommandFirst: true,
    unblockCommand: ['/usr/local/bin/notify', 'lifted', '$TARGET$'],
    banner: 'go away',
    resolveHosts: true,
  },
  files: { history: '/var/lib/x/history', blocked: '/var/lib/x/blocked' },
};

function sameKeys(schema: Schema, value: unknown, path: string): void {
  if (schema.type === 'object') {
    const keys = Object.keys(value as object).sort();
    assert.deepEqual(keys, Object.keys(schema.properties).sort(), `${path}: type and schema fields differ`);
    for (const [k, sub] of Object.entries(schema.properties)) sameKeys(sub, (value as Record<string, unknown>)[k], `${path}.${k}`);
  }
}

test('PolicySpec and the schema have the same fields', () => {
  sameKeys(specSchema, complete, 'spec');
});

test('a complete, typed spec validates unchanged', () => {
  const r = validateSpec(complete);
  assert.ok(r.ok, JSON.stringify(!r.ok && r.problems));
  assert.deepEqual(r.value, complete);
});
