// nftables set elements both ways (src/respond/firewall/nft-set-elements.ts): a target as
// interval elements, and a set dump's elements back as entries, whatever order they come in.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import type { FirewallEntry } from '../../src/respond/firewall/firewall.js';
import { addressOrNetworkOf, type AddressOrNetwork } from '../../src/net/address.js';
import { attr, nest, u32be, u64be } from '../../src/net/netlink.js';
import { elementsIn, elementsOf, hostEntry, intervalElement, networkEntries, type IntervalElement } from '../../src/respond/firewall/nft-set-elements.js';

/** Entries with each parsed target as its text. */
const listed = (entries: FirewallEntry[]) => entries.map(({ target, ...e }) => ({ address: target.text, ...e }));
const target = (text: string): AddressOrNetwork => addressOrNetworkOf(text)!;

/** One dumped element as the kernel encodes it: key, flags, timeout, expiration, comment. */
function element(key: Uint8Array, o: { end?: boolean; timeoutMs?: number; expiresMs?: number; comment?: string; open?: boolean } = {}): Buffer {
  const parts = [nest(1, attr(1, key))];
  if (o.end) parts.push(attr(3, u32be(1)));
  if (o.timeoutMs !== undefined) parts.push(attr(4, u64be(o.timeoutMs)));
  if (o.expiresMs !== undefined) parts.push(attr(5, u64be(o.expiresMs)));
  const udata = [
    ...(o.comment ? [Buffer.from([0, o.comment.length + 1]), Buffer.from(`${o.comment}\0`)] : []),
    ...(o.open ? [Buffer.from([1, 4]), Buffer.from(new Uint32Array([1]).buffer)] : []),
  ];
  if (udata.length) parts.push(attr(6, Buffer.concat(udata)));
  return nest(1, ...parts);
}
/** A dump message's payload (nfgenmsg, table, set, elements); the netlink header is the caller's. */
const message = (...elements: Buffer[]): Buffer =>
  Buffer.concat([Buffer.from([1, 0, 0, 0]), attr(1, Buffer.from('t\0')), attr(2, Buffer.from('s\0')), nest(3, ...elements)]);

function hostsOf(payload: Buffer, family: 4 | 6): FirewallEntry[] {
  const out: FirewallEntry[] = [];
  elementsIn(payload, 0, payload.length, (e) => {
    const entry = hostEntry(e, family);
    if (entry) out.push(entry);
  });
  return out;
}
function networksOf(payload: Buffer, family: 4 | 6): FirewallEntry[] {
  const kept: IntervalElement[] = [];
  elementsIn(payload, 0, payload.length, (e) => kept.push(intervalElement(e)));
  return networkEntries(kept, family);
}

test("set elements come from the target's bytes: an address alone, a network as start and end past it", () => {
  assert.deepEqual(elementsOf(target('198.18.0.1')), { start: new Uint8Array([198, 18, 0, 1]) });
  assert.deepEqual(elementsOf(target('10.9.0.0/16')), { start: new Uint8Array([10, 9, 0, 0]), end: new Uint8Array([10, 10, 0, 0]) });
  assert.deepEqual(elementsOf(target('255.255.255.0/24')), { start: new Uint8Array([255, 255, 255, 0]), end: null });
});

test('a host set dump: each address with the time it has left and its comment; an element without either is bare', () => {
  const payload = message(
    element(new Uint8Array([10, 1, 2, 3]), { timeoutMs: 60_000, expiresMs: 59_988, comment: 'local' }),
    element(new Uint8Array([198, 18, 0, 2])),
    element(new Uint8Array([198, 18, 0, 3]), { timeoutMs: 30_000, expiresMs: 1_500, comment: 'cluster' }),
  );
  assert.deepEqual(listed(hostsOf(payload, 4)), [
    { address: '10.1.2.3', expiresInSeconds: 59.988, tag: 'local' },
    { address: '198.18.0.2' },
    { address: '198.18.0.3', expiresInSeconds: 1.5, tag: 'cluster' },
  ]);
  const v6 = message(element(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 9]), { expiresMs: 10_000 }));
  assert.deepEqual(listed(hostsOf(v6, 6)), [{ address: '2001:db8::9', expiresInSeconds: 10 }]);
});

test('an interval set dump in the kernel order (highest first, an end before its start): the networks, one open at the top, neighbours apart', () => {
  // As Linux 6.18 dumped 192.168.0.0/24, 128.0.0.0/1, 10.10.0.0/16 and 10.9.0.0/16.
  const payload = message(
    element(new Uint8Array([192, 168, 1, 0]), { end: true }),
    element(new Uint8Array([192, 168, 0, 0])),
    element(new Uint8Array([128, 0, 0, 0]), { timeoutMs: 60_000, expiresMs: 59_984, comment: 'cluster', open: true }),
    element(new Uint8Array([10, 11, 0, 0]), { end: true }),
    element(new Uint8Array([10, 10, 0, 0]), { comment: 'local' }),
    element(new Uint8Array([10, 10, 0, 0]), { end: true }),
    element(new Uint8Array([10, 9, 0, 0]), { expiresMs: 120_000, comment: 'cluster' }),
  );
  assert.deepEqual(listed(networksOf(payload, 4)), [
    { address: '10.9.0.0/16', expiresInSeconds: 120, tag: 'cluster' },
    { address: '10.10.0.0/16', tag: 'local' },
    { address: '128.0.0.0/1', expiresInSeconds: 59.984, tag: 'cluster' },
    { address: '192.168.0.0/24' },
  ]);
  // A range that is no single network (never added here) is left out; its neighbours stay.
  const merged = message(element(new Uint8Array([10, 0, 0, 9]), { end: true }), element(new Uint8Array([10, 0, 0, 1])), element(new Uint8Array([9, 0, 0, 0]), { end: true }), element(new Uint8Array([8, 0, 0, 0])));
  assert.deepEqual(listed(networksOf(merged, 4)), [{ address: '8.0.0.0/8' }]);
  // An end missing from the listing (the set changed under it) makes no network open to the
  // top (192.0.0.0/2, whose removal would take the /24's start with it): only a start that
  // says it is open reaches the top.
  const cut = message(element(new Uint8Array([192, 0, 0, 0])), element(new Uint8Array([10, 1, 0, 0]), { end: true }), element(new Uint8Array([10, 0, 0, 0])));
  assert.deepEqual(listed(networksOf(cut, 4)), [{ address: '10.0.0.0/16' }]);
});

test('an IPv4-mapped key in an IPv6 host set is not read as the IPv4 address (its removal would go to the IPv4 set)', () => {
  const payload = message(element(Uint8Array.from([...Array(10).fill(0), 0xff, 0xff, 198, 51, 100, 7])), element(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7])));
  assert.deepEqual(listed(hostsOf(payload, 6)), [{ address: '2001:db8::7' }]);
});

test('any set of networks, as elementsOf writes them, dumped in any order, reads back the same', () => {
  const cidr = fc.oneof(
    fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 31 })).map(([b, p]) => addressOrNetworkOf(`${[...b].join('.')}/${p}`)!),
    fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 127 })).map(([b, p]) => {
      b[0] = 0x20; // never IPv4-mapped
      const groups = Array.from({ length: 8 }, (_, i) => ((b[2 * i]! << 8) | b[2 * i + 1]!).toString(16));
      return addressOrNetworkOf(`${groups.join(':')}/${p}`)!;
    }),
  );
  fc.assert(
    fc.property(fc.array(cidr, { maxLength: 12 }), fc.integer(), (targets, seed) => {
      for (const family of [4, 6] as const) {
        // Non-overlapping, as the kernel keeps them: each one not inside one taken before.
        const taken: AddressOrNetwork[] = [];
        for (const t of targets.filter((x) => x.family === family)) {
          const [s1, e1] = range(t);
          if (taken.every((o) => { const [s2, e2] = range(o); return e1 <= s2 || e2 <= s1; })) taken.push(t);
        }
        const elements = taken.flatMap((t) => {
          const { start, end } = elementsOf(t);
          return [element(start, { comment: 'cluster', open: end === null }), ...(end ? [element(end, { end: true })] : [])];
        });
        // Shuffled by the seed: the reader depends on no order.
        const shuffled = elements.map((e, i) => ({ e, k: Math.sin(seed + i) })).sort((a, b) => a.k - b.k).map((x) => x.e);
        const read = networksOf(message(...shuffled), family).map((e) => e.target.text).sort();
        assert.deepEqual(read, taken.map((t) => t.text).sort());
      }
    }),
    { numRuns: 2000 },
  );
});

test('a dump message of random or cut bytes never throws and reads nothing past its end', () => {
  const good = message(element(new Uint8Array([10, 1, 2, 3]), { timeoutMs: 1000, expiresMs: 900, comment: 'local' }), element(new Uint8Array([10, 9, 0, 0]), { end: true }));
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat(good.length), (bytes, cut) => {
      for (const payload of [Buffer.from(bytes), good.subarray(0, cut)]) {
        elementsIn(payload, 0, payload.length, (e) => assert.ok(e.keyAt + e.keyLength <= payload.length));
        networksOf(payload, 4);
      }
    }),
    { numRuns: 20_000 },
  );
});

/** A target's addresses as [first, past the last) in bigint. */
function range(t: AddressOrNetwork): [bigint, bigint] {
  const bits = t.family === 4 ? 32 : 128;
  const start = t.bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
  const prefix = 'prefix' in t ? (t as { prefix: number }).prefix : bits;
  return [start, start + (1n << BigInt(bits - prefix))];
}
