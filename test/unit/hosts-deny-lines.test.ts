// The text of hosts.deny lines (src/respond/hosts-deny-lines.ts, pure): hosts_access(5)
// patterns, the policy's line filled in, and which rules are the sentry's own.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addressOrNetworkOf } from '../../src/net/address.js';
import { HOSTS_DENY_MARK, addOwnLine, hostsAccessPattern, hostsDenyLine, ownLines, removeOwnLines } from '../../src/respond/hosts-deny-lines.js';

test('hosts_access(5) patterns: IPv6 in brackets, IPv4 networks as net/mask', () => {
  const pattern = (text: string) => hostsAccessPattern(addressOrNetworkOf(text)!);
  assert.equal(pattern('198.18.0.9'), '198.18.0.9');
  assert.equal(pattern('198.18.0.0/16'), '198.18.0.0/255.255.0.0');
  assert.equal(pattern('10.0.0.0/9'), '10.0.0.0/255.128.0.0');
  assert.equal(pattern('2001:DB8:0::7'), '[2001:db8::7]');
  assert.equal(pattern('2001:db8::/48'), '[2001:db8::]/48');
  assert.equal(hostsDenyLine('ALL: $TARGET$ : DENY', { target: addressOrNetworkOf('2001:db8::/48')! }), 'ALL: [2001:db8::]/48 : DENY');
  assert.equal(hostsDenyLine('sshd: $TARGET$ # $PORT$ $MODE$', { target: addressOrNetworkOf('198.18.0.9')!, port: 79, mode: 'stcp' }), 'sshd: 198.18.0.9 # 79 stcp');
  assert.throws(() => hostsDenyLine('ALL: $TARGET$ $PORT$', { target: addressOrNetworkOf('198.18.0.9')! }), /manual block has neither/);
});

test('hosts.deny text: only a rule right after the marker is the sentry\'s', () => {
  const text = `ALL: 198.18.0.9\n${HOSTS_DENY_MARK}\nALL: 198.18.0.9\n${HOSTS_DENY_MARK}\n\nALL: 198.18.0.10\n${HOSTS_DENY_MARK}`;
  assert.deepEqual(ownLines(text), ['ALL: 198.18.0.9']);
  const { text: after, removed } = removeOwnLines(text, () => true);
  assert.deepEqual(removed, ['ALL: 198.18.0.9']);
  assert.equal(after, `ALL: 198.18.0.9\n${HOSTS_DENY_MARK}\n\nALL: 198.18.0.10\n${HOSTS_DENY_MARK}`);
  assert.equal(addOwnLine(`${HOSTS_DENY_MARK}\nALL: x\n`, 'ALL: x'), null);
  assert.equal(addOwnLine('ALL: x', 'ALL: x'), `ALL: x\n${HOSTS_DENY_MARK}\nALL: x\n`);
});
