import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { classicBlockLine } from '../../src/respond/classic-files.js';
import { isSafeName } from '../../src/respond/responder.js';
import { parseNftSetJson } from '../../src/respond/firewall/nftables.js';
import { parseIpsetList } from '../../src/respond/firewall/iptables.js';
import { runProgram } from '../../src/respond/run-program.js';
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

test('commands run without a shell: metacharacters arrive as one literal argument', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kps-cmd-'));
  const marker = join(dir, 'pwned');
  const args = [`; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, 'a\nb', '*'];
  const { stdout } = await runProgram([process.execPath, '-e', 'console.log(JSON.stringify(process.argv.slice(1)))', ...args]);
  assert.deepEqual(JSON.parse(stdout), args);
  await assert.rejects(readFile(marker), { code: 'ENOENT' });
});

test('a failing or missing program is an error naming it', async () => {
  await assert.rejects(runProgram(['/nonexistent/kps-program']), /kps-program/);
  await assert.rejects(runProgram([process.execPath, '-e', 'process.stderr.write("boom"); process.exit(3)']), /failed \(3\): boom/);
});

test('classic history line format (what fail2ban and logcheck match): the name, then the address after the slash', () => {
  const t = new Date(2026, 10, 21, 0, 46, 40).getTime();
  assert.equal(
    classicBlockLine(t, '198.18.0.9', '198.18.0.9', 79, 'tcp'),
    `${Math.floor(t / 1000)} - 11/21/2026 00:46:40 Host: 198.18.0.9/198.18.0.9 Port: 79 TCP Blocked\n`,
  );
  // fail2ban's portsentry filter bans what follows the slash: \/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$
  assert.match(classicBlockLine(t, 'h.example', '2001:db8::1', 7, 'udp').trimEnd(), /Host: h\.example\/2001:db8::1 Port: [0-9]+ (TCP|UDP) Blocked$/);
});

test('a PTR answer is a name only when it is no address literal and fits a line', () => {
  for (const name of ['scanner.example', 'a-1.b2.example', 'localhost', 'x1'])
    assert.equal(isSafeName(name), true, name);
  for (const name of ['192.0.2.1', '10.1', '3221225985', '0x7f.1', 'evil.example.1', 'a b', 'evil.example\nHost: 1.2.3.4', '-a.example', ''])
    assert.equal(isSafeName(name), false, JSON.stringify(name));
});

test('kernel set listings parse (nft JSON, ipset plain)', () => {
  const nft =
    '{"nftables": [{"metainfo": {"version": "1.0.6"}}, {"set": {"name": "blocked4", "elem": [{"elem": {"val": {"prefix": {"addr": "10.9.0.0", "len": 16}}, "timeout": 60, "expires": 59}}, {"elem": {"val": "198.18.0.1", "timeout": 60, "expires": 58}}, "198.18.0.2"]}}]}';
  assert.deepEqual(parseNftSetJson(nft), [
    { address: '10.9.0.0/16', expiresInSeconds: 59 },
    { address: '198.18.0.1', expiresInSeconds: 58 },
    { address: '198.18.0.2' },
  ]);
  const ipset = 'Name: kube-portsentry-v4\nType: hash:net\nHeader: family inet\nMembers:\n198.18.0.1 timeout 3599\n10.9.0.0/16 timeout 12\n';
  assert.deepEqual(parseIpsetList(ipset), [
    { address: '198.18.0.1', expiresInSeconds: 3599 },
    { address: '10.9.0.0/16', expiresInSeconds: 12 },
  ]);
});
