// The native raw reader parses as net/packet.ts does (src/detect/raw.ts, src/native/rawbatch.c).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { nativeRaw } from '../../src/detect/raw.js';
import { DROP_REASONS, IPPROTO_TCP, IPPROTO_UDP, TCP_SYN, newParsed, parseIPv4, parseTransport } from '../../src/net/packet.js';
import { ipv4, tcp, udp } from '../../support/packets.js';


test('the native reader parses exactly as packet.ts (random bytes, both families and protocols)', () => {
  const out = newParsed();
  const reasonOf = (r: number) => (r === 0 ? null : DROP_REASONS[r - 1]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(130), fc.constantFrom(IPPROTO_TCP, IPPROTO_UDP), (bytes, claimed, protocol) => {
      const length = Math.min(claimed, bytes.length);
      const [r4, port4, flags4, dst4] = nativeRaw.parse(bytes, length, 4, protocol);
      const js4 = parseIPv4(bytes, length, out);
      assert.equal(reasonOf(r4), js4);
      if (js4 === null) assert.deepEqual([port4, flags4, dst4], [out.destinationPort, out.flags, out.destination4]);
      const [r6, port6, flags6] = nativeRaw.parse(bytes, length, 6, protocol);
      out.protocol = protocol;
      const js6 = parseTransport(bytes, length, 0, out);
      assert.equal(reasonOf(r6), js6);
      if (js6 === null) assert.deepEqual([port6, flags6], [out.destinationPort, out.flags]);
    }),
    { numRuns: 20_000 },
  );
  // Hand-made cases reach every reason, not only what random bytes happen to hit.
  for (const p of [ipv4(6, tcp(79, TCP_SYN)), ipv4(6, tcp(1, TCP_SYN), { frag: 185 }), ipv4(6, tcp(1, TCP_SYN, 3)), ipv4(17, udp(7).slice(0, 6)), ipv4(1, [8, 0, 0, 0])])
    assert.equal(reasonOf(nativeRaw.parse(p, p.length, 4, IPPROTO_TCP)[0]), parseIPv4(p, p.length, out));
});
