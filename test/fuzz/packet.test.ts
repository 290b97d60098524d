// Fuzzing the packet parsers: src/net/packet.ts and the native one in rawbatch.c (through
// its parse() binding, and end to end through a real reader fed by a raw socket in a test
// namespace). Never a throw, never a crash, every packet counted once: parsed or by reason.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { nativeRaw } from '../../src/detect/raw.js';
import { DROP_REASONS, IPPROTO_TCP, IPPROTO_UDP, newParsed, parseIPv4, parseIPv6, parseTransport, type DropReason } from '../../src/net/packet.js';
import { FUZZ_MS, FUZZ_SEED, fuzz, mutatedBytes } from '../../support/fuzz.js';
import { TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const RAW = new URL('../../src/detect/raw.js', import.meta.url).href;

const tcp = (dport: number, flags: number, options: number[] = []) => {
  const words = 5 + Math.ceil(options.length / 4);
  const h = [0x9c, 0x40, dport >> 8, dport & 0xff, 0, 0, 0, 1, 0, 0, 0, 0, words << 4, flags, 0xff, 0xff, 0, 0, 0, 0, ...options];
  while (h.length < words * 4) h.push(0);
  return h;
};
const udp = (dport: number, payload: number[] = []) => [0x9c, 0x40, dport >> 8, dport & 0xff, 0, 8 + payload.length, 0, 0, ...payload];
function ipv4(proto: number, transport: number[], ihl = 5): Uint8Array {
  const h = new Array<number>(ihl * 4).fill(1);
  h[0] = 0x40 | ihl;
  h[6] = 0x40; // don't fragment
  h[7] = 0;
  h[9] = proto;
  h.splice(12, 8, 198, 18, 0, 1, 198, 18, 0, 2);
  return Uint8Array.from([...h, ...transport]);
}
function ipv6(next: number, transport: number[]): Uint8Array {
  const h = new Array<number>(40).fill(0);
  h[0] = 0x60;
  h[6] = next;
  h[7] = 64;
  return Uint8Array.from([...h, ...transport]);
}

/** Valid packets of every shape the parsers know: the mutation corpus. */
const CORPUS: Uint8Array[] = [
  ipv4(IPPROTO_TCP, tcp(79, 0x02)),
  ipv4(IPPROTO_TCP, tcp(1, 0x29, [2, 4, 5, 0xb4, 1, 3, 3, 7])),
  ipv4(IPPROTO_TCP, tcp(11, 0x00), 15),
  ipv4(IPPROTO_UDP, udp(161, [1, 2, 3])),
  ipv6(IPPROTO_TCP, tcp(22, 0x01)),
  ipv6(IPPROTO_UDP, udp(53)),
  Uint8Array.from(tcp(6000, 0x12)),
  Uint8Array.from(udp(7)),
];

const reasonOf = (r: number): DropReason | null => (r === 0 ? null : DROP_REASONS[r - 1]!);
const known = new Set<string | null>([...DROP_REASONS, null]);

describe('fuzz: packet parsers', { concurrency: false }, () => {
  test('packet.ts and the native parser agree on random and mutated packets, and never throw', async () => {
    const out = newParsed();
    const input = fc.tuple(fc.oneof(mutatedBytes(CORPUS), fc.uint8Array({ maxLength: 200 })), fc.nat(), fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP, 0, 1, 58, 255));
    await fuzz('packet parsers', input, ([bytes, cut, protocol]) => {
      const length = bytes.length ? cut % (bytes.length + 1) : 0;
      const js4 = parseIPv4(bytes, length, out);
      assert.ok(known.has(js4));
      if (js4 === null) assert.ok(out.transport + 8 <= length, 'an IPv4 parse stays inside the packet');
      const seen4 = { port: out.destinationPort, flags: out.flags, dst: out.destination4 };
      const js6 = parseIPv6(bytes, length, out);
      assert.ok(known.has(js6));
      if (js6 === null) assert.ok(out.transport + 8 <= length, 'an IPv6 parse stays inside the packet');
      // The native reader sees at most 128 bytes of a packet (its capture length), which
      // holds the largest IPv4 header and the TCP bytes either parser reads.
      const [r4, port4, flags4, dst4] = nativeRaw.parse(bytes, length, 4, protocol);
      assert.equal(reasonOf(r4), js4);
      if (js4 === null) assert.deepEqual([port4, flags4, dst4], [seen4.port, seen4.flags, seen4.dst]);
      out.protocol = protocol;
      const jsT = parseTransport(bytes, length, 0, out);
      assert.ok(known.has(jsT));
      const [r6, port6, flags6] = nativeRaw.parse(bytes, length, 6, protocol);
      assert.equal(reasonOf(r6), jsT);
      if (jsT === null) assert.deepEqual([port6, flags6], [out.destinationPort, out.flags]);
    });
  });

  test('the native binding turns bad arguments into JavaScript errors, never a crash', async () => {
    const junk = fc.oneof(fc.anything(), fc.constantFrom(NaN, Infinity, -Infinity, -1, 2 ** 31, 2 ** 53, -(2 ** 31) - 1, 1e300));
    await fuzz('native parse arguments', fc.tuple(fc.oneof(junk, fc.uint8Array()), junk, junk, junk), ([packet, length, family, protocol]) => {
      try {
        const r = nativeRaw.parse(packet as Uint8Array, length as number, family as 4, protocol as number);
        assert.ok(Array.isArray(r) && r.length === 4 && known.has(reasonOf(r[0])), `parse returned ${JSON.stringify(r)}`);
      } catch (err) {
        assert.ok(err instanceof Error, `threw ${String(err)}`);
        assert.match(err.message, /parse\(packet|kube-portsentry native|number expected|A number was expected/i);
      }
    });
  });

  describe('the native reader, end to end in a namespace', () => {
    let net: TestNet | undefined;
    let dir: string | undefined;
    before(async () => {
      if (process.getuid?.() !== 0) return;
      net = await TestNet.create();
      dir = await mkdtemp(join(tmpdir(), 'kps-fuzz-'));
    });
    after(async () => {
      await net?.destroy();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    for (const family of [4, 6] as const) {
      test(`IPv${family}: mutated TCP and UDP segments are each counted once, by reason or as a probe, as packet.ts predicts`, async (t) => {
        if (!prerequisites(t, { root: true, tools: ['ip'], modules: ['raw-socket'] })) return;
        // The kernel writes the IP header (AF_INET raw socket); the transport bytes are ours.
        const segments = fc.sample(
          fc.tuple(fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP), fc.oneof(mutatedBytes(CORPUS.slice(6)), fc.uint8Array({ minLength: 1, maxLength: 60 }))),
          { seed: FUZZ_SEED + family, numRuns: Math.max(200, Math.min(4000, FUZZ_MS)) },
        ).filter(([, b]) => b.length > 0);
        const watched = [1, 7, 11, 53, 79, 161, 6000, 40000];
        // What packet.ts and the socket filter say about each segment.
        const expected: Record<string, Record<string, number>> = { 6: {}, 17: {} };
        const out = newParsed();
        for (const [protocol, bytes] of segments) {
          const b = bytes.slice(0, 128);
          out.protocol = protocol;
          const reason = parseTransport(b, b.length, 0, out);
          const key = reason ?? (protocol === IPPROTO_TCP && out.flags & 0x14 ? 'filtered' : watched.includes(out.destinationPort) ? 'probes' : 'filtered');
          expected[protocol]![key] = (expected[protocol]![key] ?? 0) + 1;
        }
        const file = join(dir!, `segments${family}.json`);
        await writeFile(file, JSON.stringify(segments.map(([p, b]) => [p, Buffer.from(b).toString('hex')])));
        const { stdout } = await net!.exec(net!.target, [
          process.execPath,
          '--input-type=module',
          '-e',
          `
          import { createRequire } from 'node:module';
          import { readFileSync } from 'node:fs';
          import { nativeRaw } from ${JSON.stringify(RAW)};
          const raw = createRequire(${JSON.stringify(RAW)})('raw-socket');
          const watched = new Uint8Array(65536);
          for (const p of ${JSON.stringify(watched)}) watched[p] = 1;
          const inUse = new Uint8Array(65536);
          const result = {};
          const readers = [6, 17].map((protocol) => {
            const stats = { records: 0, repeats: 0, badPorts: 0 };
            const reader = nativeRaw.open(${family}, protocol, watched, inUse, (buf, count) => {
              for (let i = 0; i < count; i++) {
                const at = i * reader.recordSize;
                stats.records++;
                stats.repeats += buf.readUInt32LE(at + 4);
                if (!watched[buf.readUInt16LE(at + 2)]) stats.badPorts++;
              }
            });
            return { protocol, reader, stats };
          });
          const sockets = {
            6: raw.createSocket({ addressFamily: raw.AddressFamily.IPv${family}, protocol: raw.Protocol.TCP }),
            17: raw.createSocket({ addressFamily: raw.AddressFamily.IPv${family}, protocol: raw.Protocol.UDP }),
          };
          const segments = JSON.parse(readFileSync(${JSON.stringify(file)}, 'utf8'));
          for (const [protocol, hex] of segments) {
            const b = Buffer.from(hex, 'hex');
            await new Promise((resolve, reject) => sockets[protocol].send(b, 0, b.length, ${JSON.stringify(family === 4 ? '127.0.0.1' : '::1')}, (e) => (e ? reject(e) : resolve())));
          }
          await new Promise((r) => setTimeout(r, 500));
          const names = ['packets', ...${JSON.stringify(DROP_REASONS)}, 'reply', 'unwatched', 'probes', 'drains'];
          for (const { protocol, reader, stats } of readers) {
            result[protocol] = { ...stats, filtered: reader.filtered, counters: Object.fromEntries(names.map((n, i) => [n, reader.counters[i]])) };
            reader.close();
          }
          for (const s of Object.values(sockets)) s.close();
          console.log(JSON.stringify(result));`,
        ]);
        const result = JSON.parse(stdout) as Record<string, { records: number; repeats: number; badPorts: number; filtered: boolean; counters: Record<string, number> }>;
        process.stdout.write(`# IPv${family}: ${segments.length} segments sent; expected ${JSON.stringify(expected)}\n`);
        assert.ok(expected[IPPROTO_TCP]!.probes && expected[IPPROTO_TCP]!['truncated-tcp'] && expected[IPPROTO_TCP]!['bad-tcp-offset'], 'the sample reaches probes and TCP drop reasons');
        for (const protocol of [IPPROTO_TCP, IPPROTO_UDP]) {
          const r = result[protocol]!;
          const want = expected[protocol]!;
          const c = r.counters;
          assert.equal(r.filtered, true);
          const accounted = DROP_REASONS.reduce((n, reason) => n + c[reason]!, 0) + c.reply! + c.unwatched! + c.probes!;
          assert.equal(c.packets, accounted, `protocol ${protocol}: every packet read is counted once`);
          for (const reason of DROP_REASONS) assert.equal(c[reason], want[reason] ?? 0, `protocol ${protocol}: ${reason}`);
          assert.equal(c.probes, want.probes ?? 0, `protocol ${protocol}: probes`);
          assert.equal(r.repeats, c.probes, 'probe records add up to the probes counted');
          assert.equal(r.badPorts, 0, 'no record for an unwatched port');
          assert.equal(c.reply, 0, 'the filter keeps replies out');
          assert.equal(c.unwatched, 0, 'the filter keeps unwatched ports out');
        }
      });
    }
  });
});
