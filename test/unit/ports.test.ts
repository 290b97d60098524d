// Port lists (src/policy/ports.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { expandPorts, parsePortSpec } from '../../src/policy/ports.js';

test('port specs: numbers, ranges, and what is wrong with a bad one', () => {
  assert.deepEqual(parsePortSpec('6000-6003'), { from: 6000, to: 6003 });
  assert.deepEqual(expandPorts([3, '1-2', 2, '5']), [1, 2, 3, 5]);
  assert.match(parsePortSpec(0) as string, /between 1 and 65535/);
  assert.match(parsePortSpec(65536) as string, /between 1 and 65535/);
  assert.match(parsePortSpec('20-10') as string, /reversed/);
  assert.match(parsePortSpec('http') as string, /not a port/);
});
