// The C sender (bench/flood.c) sends what it says: counted on arrival in the target
// namespace by nftables counters (per flag combination, per source) and by the target's
// own TCP counters (every segment arrived whole, checksums right). Not a timing test:
// the rate is low and only counts are asserted.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { flood } from '../../bench/flood-sender.js';
import { TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

let net: TestNet | null = null;
const TABLE = 'kps_flood_test';

before(async () => {
  if (process.getuid?.() === 0) net = await TestNet.create();
});
after(async () => {
  await net?.destroy();
});

/** The packets of each counter rule in the target's table, in rule order. */
async function counters(n: TestNet): Promise<number[]> {
  const { stdout } = await n.exec(n.target, ['nft', 'list', 'table', 'ip', TABLE]);
  return [...stdout.matchAll(/counter packets (\d+)/g)].map((m) => Number(m[1]));
}

/** A field of a line pair in the target's /proc/net/snmp ("Tcp" "InSegs"). */
async function snmp(n: TestNet, group: string, field: string): Promise<number> {
  const { stdout } = await n.exec(n.target, ['cat', '/proc/net/snmp']);
  const [names, values] = stdout.split('\n').filter((l) => l.startsWith(`${group}:`));
  const at = names!.split(/\s+/).indexOf(field);
  return Number(values!.split(/\s+/)[at]);
}

test('flood sends the packets, flags and sources it reports, each whole', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nft', 'gcc'] })) return;
  const n = net!;
  const port = 9;
  const script = [
    `add table ip ${TABLE}`,
    `add chain ip ${TABLE} in { type filter hook prerouting priority -300; }`,
    ...['0x02', '0x01', '0x00', '0x29'].map((f) => `add rule ip ${TABLE} in ip daddr ${TARGET_V4} tcp dport ${port} tcp flags == ${f} counter`),
    `add rule ip ${TABLE} in ip saddr 198.18.1.1 tcp dport ${port} counter`,
    `add rule ip ${TABLE} in ip saddr 198.18.1.100 tcp dport ${port} counter`,
    `add rule ip ${TABLE} in ip saddr 198.18.1.101 tcp dport ${port} counter`,
    `add rule ip ${TABLE} in ip saddr 198.18.1.1-198.18.1.100 tcp dport ${port} counter`,
    '',
  ].join('\n');
  await n.exec(n.target, ['nft', '-f', '-'], { input: script });
  const segments0 = await snmp(n, 'Tcp', 'InSegs');
  const csumErrors0 = await snmp(n, 'Tcp', 'InCsumErrors');
  const headerErrors0 = await snmp(n, 'Ip', 'InHdrErrors');

  const count = 8000;
  const result = await flood(n, { rate: 40_000, seconds: 30, count, port, sources: 100, srcBase: '198.18.1.1', flags: 'syn,fin,null,xmas' });
  assert.equal(result.sent, count, 'it reports the count it was asked for');
  assert.equal(result.errors, 0);

  const [syn, fin, nul, xmas, first, last, beyond, range] = await counters(n);
  assert.deepEqual([syn, fin, nul, xmas], [2000, 2000, 2000, 2000], 'SYN, FIN, NULL and XMAS in turn, every one arrived');
  assert.deepEqual([first, last, beyond, range], [80, 80, 0, count], 'the 100 sources in turn from 198.18.1.1, none beyond');
  assert.equal((await snmp(n, 'Tcp', 'InSegs')) - segments0, count, 'the target\'s TCP took in every segment');
  assert.equal((await snmp(n, 'Tcp', 'InCsumErrors')) - csumErrors0, 0, 'TCP checksums right');
  assert.equal((await snmp(n, 'Ip', 'InHdrErrors')) - headerErrors0, 0, 'IPv4 headers right');
});

test('flood refuses what it cannot send, naming the option', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'gcc'] })) return;
  await assert.rejects(flood(net!, { rate: 0, seconds: 1, flags: 'syn,ack' }), /--flags is a comma list of syn, fin, null, xmas: syn,ack/);
  await assert.rejects(flood(net!, { rate: 0, seconds: 1, port: 70000 }), /--port is 1-65535/);
});
