// The bundled default policy (src/policy/default.ts).
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { defaultPolicy } from '../../src/policy/default.js';
import { parsePolicyYaml } from '../../src/policy/load.js';
import { DEBIAN_TCP_PORTS, DEBIAN_UDP_PORTS } from '../../src/policy/spec-schema.js';
import { validateDocument } from '../../src/policy/validate.js';

test('the bundled default policy is the classic one, with Debian port lists', () => {
  const spec = defaultPolicy().spec;
  assert.deepEqual(spec.tcp.ports, DEBIAN_TCP_PORTS);
  assert.deepEqual(spec.udp.ports, DEBIAN_UDP_PORTS);
  assert.equal(spec.tcp.advancedLimit, 1024);
  assert.deepEqual(spec.tcp.exclude, [113, 139]);
  assert.deepEqual(spec.udp.exclude, [520, 138, 137, 67]);
  assert.equal(spec.trigger.count, 0);
  assert.equal(spec.tcp.mode, 'bind');
  assert.ok(validateDocument(defaultPolicy()).ok);
});

test('policies/default.yaml is the bundled default', async () => {
  const text = await readFile(new URL('../../../policies/default.yaml', import.meta.url), 'utf8');
  assert.deepEqual(parsePolicyYaml(text, 'default.yaml'), defaultPolicy());
});
