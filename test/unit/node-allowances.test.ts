// What a cluster policy may have root do on a node, directly: programs and hosts.deny files
// only where the node's admin allowed them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { describeRefusals, refusalReason, refusalsOf } from '../../src/policy/node-allowances.js';
import { validateSpec } from '../../src/policy/validate.js';

const spec = (response: object) => {
  const r = validateSpec({ response }, 'spec');
  assert.ok(r.ok);
  return r.value;
};
const none = { commands: [], hostsDenyFiles: [] };

test('a policy that runs nothing and writes no hosts.deny file needs no allowance', () => {
  assert.deepEqual(refusalsOf(spec({ tcp: 'block' }), none), []);
  assert.deepEqual(refusalsOf(spec({ hostsDeny: { enabled: false, path: '/etc/passwd' } }), none), [], 'a disabled hosts.deny writes nothing');
});

test('each program and the hosts.deny file is refused unless allowed, and named', () => {
  const s = spec({ tcp: 'command', command: ['/bin/sh', '-c', 'id'], unblockCommand: ['/usr/bin/true'], hostsDeny: { enabled: true, path: '/etc/cron.d/x' } });
  const refused = refusalsOf(s, none);
  assert.equal(
    describeRefusals(refused),
    'spec.response.command: "/bin/sh" is not an allowed command; spec.response.unblockCommand: "/usr/bin/true" is not an allowed command; spec.response.hostsDeny.path: "/etc/cron.d/x" is not an allowed hosts.deny file',
  );
  assert.equal(refusalReason(refused), 'CommandNotAllowed');
  const onlyFile = refusalsOf(s, { commands: ['/bin/sh', '/usr/bin/true'], hostsDenyFiles: ['/host/etc/hosts.deny'] });
  assert.deepEqual(onlyFile.map((r) => r.field), ['spec.response.hostsDeny.path']);
  assert.equal(refusalReason(onlyFile), 'HostsDenyNotAllowed');
  assert.deepEqual(refusalsOf(s, { commands: ['/bin/sh', '/usr/bin/true'], hostsDenyFiles: ['/etc/cron.d/x'] }), []);
});
