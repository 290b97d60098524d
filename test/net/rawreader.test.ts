// The native raw reader against the real kernel, in a test namespace: TCP segments sent
// over loopback (IPv4 and IPv6) reach it, or are filtered out by its socket filter,
// as they should; malformed ones are read and counted by reason; a flood of identical
// probes is folded into counted records.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const RAW = new URL('../../src/detect/raw.js', import.meta.url).href;
const PACKET = new URL('../../src/net/packet.js', import.meta.url).href;

interface Outcome {
  filtered: boolean;
  counters: Record<string, number>;
  /** "port flags" -> packets, summed over records. */
  probes: Record<string, number>;
  records: number;
}

describe('native raw reader', { concurrency: false }, () => {
  let net: TestNet | undefined;
  before(async () => {
    if (process.getuid?.() === 0) net = await TestNet.create();
  });
  after(async () => net?.destroy());

  /** Opens a reader watching `watched` ports, sends the segments over loopback, reports. */
  async function run(family: 4 | 6, watched: string, segments: string, rewatch?: string): Promise<Outcome> {
    const { stdout } = await net!.exec(net!.target, [
      process.execPath,
      '--input-type=module',
      '-e',
      `
      import { createRequire } from 'node:module';
      import { spawnSync } from 'node:child_process';
      import { nativeRaw } from ${JSON.stringify(RAW)};
      import { DROP_REASONS } from ${JSON.stringify(PACKET)};
      const watched = new Uint8Array(65536);
      for (const p of ${watched}) watched[p] = 1;
      const inUse = new Uint8Array(65536);
      const probes = {};
      let records = 0;
      const reader = nativeRaw.open(${family}, 6, watched, inUse, (buf, count) => {
        for (let i = 0; i < count; i++) {
          const at = i * reader.recordSize;
          const key = buf.readUInt16LE(at + 2) + ' ' + buf[at + 1];
          probes[key] = (probes[key] ?? 0) + buf.readUInt32LE(at + 4);
          records++;
        }
      });
      let filtered = reader.filtered;
      ${rewatch ? `watched.fill(0); for (const p of ${rewatch}) watched[p] = 1; filtered = reader.refilter();` : ''}
      // Sent by another process while this one waits for it, so they are all queued
      // before the reader looks, as under a flood.
      const sender = \`
        const raw = require(\${JSON.stringify(createRequire(${JSON.stringify(RAW)}).resolve('raw-socket'))});
        const socket = raw.createSocket({ addressFamily: raw.AddressFamily.IPv${family}, protocol: raw.Protocol.TCP });
        const tcp = (port, flags, offset = 5, length = 20) => {
          const b = Buffer.alloc(20);
          b.writeUInt16BE(40000, 0); b.writeUInt16BE(port, 2); b[12] = offset << 4; b[13] = flags;
          return b.subarray(0, length);
        };
        let left = ${segments}.length;
        for (const segment of ${segments}) {
          const b = tcp(...segment);
          socket.send(b, 0, b.length, ${JSON.stringify(family === 4 ? '127.0.0.1' : '::1')}, (e) => { if (e) throw e; if (--left === 0) process.exit(0); });
        }\`;
      const sent = spawnSync(process.execPath, ['-e', sender], { encoding: 'utf8' });
      if (sent.status !== 0) throw new Error(sent.stderr);
      await new Promise((r) => setTimeout(r, 300));
      const names = ['packets', ...DROP_REASONS, 'reply', 'unwatched', 'probes', 'drains'];
      const counters = Object.fromEntries(names.map((n, i) => [n, reader.counters[i]]));
      reader.close();
      console.log(JSON.stringify({ filtered, counters, probes, records }));`,
    ]);
    return JSON.parse(stdout) as Outcome;
  }

  const SYN = 0x02;
  const FIN = 0x01;
  const ACK = 0x10;
  const RST = 0x04;
  // SYN x50 to 1 (a flood), SYN+ACK and RST to 1 (replies), SYN to 2 (not watched),
  // FIN to 11, a 10-byte TCP header, a data offset of 3 words.
  const segments = JSON.stringify([
    ...Array.from({ length: 50 }, () => [1, SYN]),
    [1, SYN | ACK],
    [1, RST],
    [2, SYN],
    [11, FIN],
    [1, SYN, 5, 10],
    [1, SYN, 3],
  ]);

  for (const family of [4, 6] as const) {
    test(`IPv${family}: the kernel filter keeps replies and unwatched ports out; probes and malformed packets get through`, async (t) => {
      if (!prerequisites(t, { root: true, tools: ['ip'], modules: ['raw-socket'] })) return;
      const r = await run(family, '[1, 11]', segments);
      assert.equal(r.filtered, true);
      assert.deepEqual(r.probes, { [`1 ${SYN}`]: 50, [`11 ${FIN}`]: 1 });
      assert.ok(r.records < 51, `identical probes are folded (${r.records} records for 51 probes, ${r.counters.drains} drains)`);
      assert.equal(r.counters['truncated-tcp'], 1);
      assert.equal(r.counters['bad-tcp-offset'], 1);
      assert.equal(r.counters.reply, 0, 'replies never reach user space');
      assert.equal(r.counters.unwatched, 0, 'unwatched ports never reach user space');
      assert.equal(r.counters.packets, 53, '51 probes and 2 malformed packets read, nothing else');
      assert.equal(r.counters.probes, 51);
    });
  }

  test('more watched ranges than a filter holds: no filter, the same outcome from user space', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip'], modules: ['raw-socket'] })) return;
    // Every odd port below 4000: 2000 ranges.
    const r = await run(4, 'Array.from({ length: 2000 }, (_, i) => 2 * i + 1)', segments);
    assert.equal(r.filtered, false);
    assert.deepEqual(r.probes, { [`1 ${SYN}`]: 50, [`11 ${FIN}`]: 1 });
    assert.equal(r.counters.reply, 2);
    assert.equal(r.counters.unwatched, 1);
    assert.equal(r.counters.packets, 56);
  });

  test('the watched ports changed in place (a policy edit): the new filter and table apply on the same socket', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip'], modules: ['raw-socket'] })) return;
    // From a table no filter holds to one it does, and from other ports to these.
    for (const before of ['Array.from({ length: 2000 }, (_, i) => 2 * i + 1)', '[2, 80]']) {
      const r = await run(4, before, segments, '[1, 11]');
      assert.equal(r.filtered, true, `from ${before}`);
      assert.deepEqual(r.probes, { [`1 ${SYN}`]: 50, [`11 ${FIN}`]: 1 });
      assert.equal(r.counters.reply, 0);
      assert.equal(r.counters.unwatched, 0, 'port 2, watched before the change, is filtered out after it');
      assert.equal(r.counters.packets, 53);
    }
    // And back to more ranges than a filter holds: the old filter goes, user space checks.
    const r = await run(4, '[1, 11]', segments, 'Array.from({ length: 2000 }, (_, i) => 2 * i + 1)');
    assert.equal(r.filtered, false);
    assert.deepEqual(r.probes, { [`1 ${SYN}`]: 50, [`11 ${FIN}`]: 1 });
    assert.equal(r.counters.unwatched, 1);
    assert.equal(r.counters.packets, 56);
  });
});
