import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { IpTrie } from '../../src/net/ip-trie.js';
import { cidrCovers, formatIp, normalizeIp, parseCidr, parseIp } from '../../src/net/ip.js';

test('addresses normalize to canonical text', () => {
  assert.equal(normalizeIp('::ffff:198.18.0.1'), '198.18.0.1');
  assert.equal(normalizeIp('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(normalizeIp('2001:db8:0:1:0:0:0:1'), '2001:db8:0:1::1');
  assert.equal(normalizeIp('::'), '::');
  assert.equal(normalizeIp('::1'), '::1');
  assert.equal(normalizeIp('fe80::1%eth0'), 'fe80::1');
  assert.equal(normalizeIp('1.2.3'), null);
  assert.equal(normalizeIp('example.com'), null);
  assert.equal(normalizeIp('$(reboot)'), null);
});

test('IPv6 formatting round-trips through node for random addresses', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
      const text = formatIp(bytes);
      const back = parseIp(text);
      assert.ok(back, text);
      if (back.family === 6) assert.deepEqual([...back.bytes], [...bytes]);
    }),
    { numRuns: 2000 },
  );
});

test('CIDRs parse, clear host bits and reject nonsense', () => {
  assert.deepEqual([...parseCidr('198.18.7.9/16')!.bytes], [198, 18, 0, 0]);
  assert.equal(parseCidr('198.18.0.1')!.prefix, 32);
  assert.equal(parseCidr('2001:db8::/32')!.prefix, 32);
  assert.equal(parseCidr('2001:db8::1')!.prefix, 128);
  for (const bad of ['198.18.0.0/33', '2001:db8::/129', '198.18.0.0/', '198.18.0.0/-1', 'x/8', '198.18.0.0/8/8', ''])
    assert.equal(parseCidr(bad), null, bad);
});

test('the trie matches v4 and v6 prefixes and nothing else', () => {
  const trie = new IpTrie(['10.0.0.0/8', '198.18.5.5', '2001:db8:1::/48', '::1/128']);
  assert.ok(trie.has('10.200.3.4'));
  assert.ok(trie.has('198.18.5.5'));
  assert.ok(!trie.has('198.18.5.6'));
  assert.ok(!trie.has('11.0.0.1'));
  assert.ok(trie.has('2001:db8:1:ffff::9'));
  assert.ok(!trie.has('2001:db8:2::9'));
  assert.ok(trie.has('::1'));
  assert.ok(trie.has('::ffff:10.1.1.1'), 'v4-mapped sources match v4 prefixes');
  assert.ok(!trie.has('not an ip'));
  assert.equal(new IpTrie(['0.0.0.0/0']).has('203.0.113.9'), true);
  assert.equal(new IpTrie(['0.0.0.0/0']).has('2001:db8::9'), false, 'families are separate');
});

test('the trie agrees with a linear scan on random lists', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.uint8Array({ minLength: 4, maxLength: 4 }), fc.integer({ min: 0, max: 32 })), { maxLength: 40 }),
      fc.array(fc.uint8Array({ minLength: 4, maxLength: 4 }), { minLength: 1, maxLength: 40 }),
      (entries, probes) => {
        const cidrs = entries.map(([b, p]) => parseCidr(`${formatIp(b)}/${p}`)!);
        const trie = new IpTrie();
        for (const c of cidrs) trie.addCidr(c);
        for (const probe of probes) {
          const linear = cidrs.some((c) => {
            for (let bit = 0; bit < c.prefix; bit++) {
              const mask = 0x80 >> (bit & 7);
              if ((probe[bit >> 3]! & mask) !== (c.bytes[bit >> 3]! & mask)) return false;
            }
            return true;
          });
          assert.equal(trie.hasBytes(probe), linear);
        }
      },
    ),
    { numRuns: 500 },
  );
});

test('a CIDR covers the longer prefixes inside it, and nothing else', () => {
  const c = (text: string) => parseCidr(text)!;
  assert.equal(cidrCovers(c('10.0.0.0/8'), c('10.1.0.0/16')), true);
  assert.equal(cidrCovers(c('10.0.0.0/8'), c('10.1.2.3')), true);
  assert.equal(cidrCovers(c('10.1.0.0/16'), c('10.0.0.0/8')), false);
  assert.equal(cidrCovers(c('10.0.0.0/8'), c('10.0.0.0/8')), false);
  assert.equal(cidrCovers(c('10.0.0.0/8'), c('11.0.0.0/16')), false);
  assert.equal(cidrCovers(c('0.0.0.0/0'), c('192.0.2.0/24')), true);
  assert.equal(cidrCovers(c('2001:db8::/32'), c('2001:db8:1::/48')), true);
  assert.equal(cidrCovers(c('2001:db8::/32'), c('10.0.0.0/16')), false);
  assert.equal(cidrCovers(c('10.0.0.1/31'), c('10.0.0.0/32')), true);
});
