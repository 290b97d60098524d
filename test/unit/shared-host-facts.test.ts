// Which of the nodes' own facts are protected on every node (src/cluster/shared-host-facts.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { sharedHostFacts } from '../../src/cluster/shared-host-facts.js';

test('a node\'s own facts protect an address everywhere only when a second node reports it too', () => {
  const shared = sharedHostFacts([
    { gateways: ['10.0.0.1'], dns: ['10.0.0.2', '10.0.0.2'], addresses: ['10.0.0.11', '198.51.100.60'] },
    { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['10.0.0.12', '172.17.0.1'] },
    { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['10.0.0.13', '172.17.0.1'] },
  ]);
  assert.deepEqual(shared, { gateways: ['10.0.0.1'], dns: ['10.0.0.3'], addresses: ['172.17.0.1'] }, 'one node listing an address twice is still one node');
});

