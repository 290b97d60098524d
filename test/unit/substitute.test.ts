// $TARGET$ $PORT$ $MODE$ substitution (src/respond/substitute.ts): only checked values.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressOf } from '../../src/net/address.js';
import { SubstitutionError, substitute, substituteArgv } from '../../src/respond/substitute.js';

const good = { target: '198.18.0.9', port: 79, mode: 'tcp' as const };

test('substitution inserts only checked values', () => {
  assert.deepEqual(substituteArgv(['/bin/notify', '$TARGET$', 'port=$PORT$', '$MODE$'], good), [
    '/bin/notify', '198.18.0.9', 'port=79', 'tcp',
  ]);
  assert.equal(substitute('x $TARGET$', { ...good, target: '::ffff:198.18.0.9' }), 'x 198.18.0.9');
  assert.equal(substitute('$TARGET$', { ...good, target: '2001:DB8::1' }), '2001:db8::1');
});

test('hostile values never reach a command', () => {
  const hostile = [
    '$(reboot)', '`id`', '198.18.0.9; rm -rf /', '198.18.0.9\nALL: ALL', 'evil.example.com', 'a'.repeat(100_000),
    '198.18.0.9 ', '', '../../etc/passwd',
  ];
  for (const target of hostile)
    assert.throws(() => substituteArgv(['/bin/echo', '$TARGET$'], { ...good, target }), SubstitutionError, target.slice(0, 20));
  for (const port of [0, 65536, 1.5, NaN, '79; reboot'])
    assert.throws(() => substitute('$PORT$', { ...good, port: port as number }), SubstitutionError);
  for (const mode of ['tcp;reboot', 'TCP', '', 'xtcp'])
    assert.throws(() => substitute('$MODE$', { ...good, mode: mode as 'tcp' }), SubstitutionError);
});

test('an address a probe carried is substituted as its reader wrote it; an object with other text is refused', () => {
  assert.deepEqual(substituteArgv(['/bin/notify', '$TARGET$'], { ...good, target: addressOf('::ffff:198.18.0.9')! }), ['/bin/notify', '198.18.0.9']);
  assert.deepEqual(substituteArgv(['$TARGET$'], { ...good, target: addressOf('2001:DB8::1')! }), ['2001:db8::1']);
  const forged = { text: '198.18.0.9; reboot', family: 4 as const, bytes: new Uint8Array(4) };
  assert.throws(() => substituteArgv(['/bin/echo', '$TARGET$'], { ...good, target: forged }), SubstitutionError);
});
