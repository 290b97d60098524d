import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { DROP_REASONS, FLAG_NAMES, TCP_ACK, TCP_FIN, TCP_PSH, TCP_RST, TCP_SYN, TCP_URG, classifyTcp, newParsed, parseIPv4, parseIPv6, parseTransport } from '../../src/net/packet.js';
import { ipv4, tcp, udp } from '../../support/packets.js';


test('IPv4 TCP and UDP headers parse in place', () => {
  const out = newParsed();
  const syn = ipv4(6, tcp(79, TCP_SYN));
  assert.equal(parseIPv4(syn, syn.length, out), null);
  assert.deepEqual(out, { protocol: 6, transport: 20, destination4: 0xc6120002, sourcePort: 40000, destinationPort: 79, flags: TCP_SYN });
  const withOptions = ipv4(17, udp(161), { ihl: 6 });
  assert.equal(parseIPv4(withOptions, withOptions.length, out), null);
  assert.deepEqual([out.protocol, out.transport, out.destinationPort, out.flags], [17, 24, 161, 0]);
});

test('malformed packets are named, never thrown', () => {
  const out = newParsed();
  const cases: [Uint8Array, string][] = [
    [new Uint8Array(10), 'truncated-ip'],
    [ipv4(6, tcp(1, TCP_SYN)).map((b, i) => (i === 0 ? 0x65 : b)), 'bad-ip-version'],
    [ipv4(6, tcp(1, TCP_SYN)).map((b, i) => (i === 0 ? 0x44 : b)), 'bad-ihl'],
    [ipv4(6, tcp(1, TCP_SYN), { ihl: 15 }).slice(0, 40), 'truncated-ip'],
    [ipv4(6, tcp(1, TCP_SYN), { frag: 185 }), 'fragment'],
    [ipv4(1, [8, 0, 0, 0]), 'not-tcp-or-udp'],
    [ipv4(6, tcp(1, TCP_SYN).slice(0, 10)), 'truncated-tcp'],
    [ipv4(6, tcp(1, TCP_SYN, 3)), 'bad-tcp-offset'],
    [ipv4(17, udp(7).slice(0, 6)), 'truncated-udp'],
  ];
  for (const [packet, reason] of cases) assert.equal(parseIPv4(packet, packet.length, out), reason);
  // More-fragments with offset 0 is a first fragment: its header is there and it is judged.
  const first = ipv4(6, tcp(1, TCP_SYN), { frag: 0x2000 });
  assert.equal(parseIPv4(first, first.length, out), null);
});

test('IPv6: fixed header parses; extension headers and fragments are counted', () => {
  const out = newParsed();
  const v6 = (next: number, transport: number[]) => {
    const h = new Array<number>(40).fill(0);
    h[0] = 0x60;
    h[6] = next;
    return Uint8Array.from([...h, ...transport]);
  };
  const syn = v6(6, tcp(22, TCP_SYN));
  assert.equal(parseIPv6(syn, syn.length, out), null);
  assert.deepEqual([out.protocol, out.transport, out.destinationPort], [6, 40, 22]);
  assert.equal(parseIPv6(v6(0, tcp(22, TCP_SYN)), 60, out), 'ipv6-extension-header');
  assert.equal(parseIPv6(v6(43, tcp(22, TCP_SYN)), 60, out), 'ipv6-extension-header');
  assert.equal(parseIPv6(v6(44, tcp(22, TCP_SYN)), 60, out), 'fragment');
  assert.equal(parseIPv6(v6(6, []), 39, out), 'truncated-ip');
  // What an AF_INET6 raw socket hands over: the transport header alone.
  out.protocol = 17;
  assert.equal(parseTransport(Uint8Array.from(udp(53)), 8, 0, out), null);
  assert.equal(out.destinationPort, 53);
});

test('random bytes never throw and always yield a known reason or a parse', () => {
  const out = newParsed();
  const known = new Set<string | null>([...DROP_REASONS, null]);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.nat(130), (bytes, claimed) => {
      const length = Math.min(claimed, bytes.length);
      assert.ok(known.has(parseIPv4(bytes, length, out)));
      assert.ok(known.has(parseIPv6(bytes, length, out)));
      out.protocol = 6;
      assert.ok(known.has(parseTransport(bytes, length, 0, out)));
      const r = parseIPv4(bytes, length, out);
      if (r === null) assert.ok(out.transport + 8 <= length, 'a parse never reads past the given length');
    }),
    { numRuns: 20_000 },
  );
});

test('TCP flag sets classify as PortSentry and nmap name them', () => {
  assert.equal(classifyTcp(TCP_SYN), 'syn');
  assert.equal(classifyTcp(TCP_SYN | 0xc0), 'syn', 'ECN setup SYN is a SYN');
  assert.equal(classifyTcp(TCP_FIN), 'fin');
  assert.equal(classifyTcp(0), 'null');
  assert.equal(classifyTcp(TCP_FIN | TCP_PSH | TCP_URG), 'xmas');
  assert.equal(classifyTcp(TCP_SYN | TCP_FIN), 'oddball');
  assert.equal(classifyTcp(TCP_URG), 'oddball');
  for (const replyish of [TCP_ACK, TCP_SYN | TCP_ACK, TCP_RST, TCP_RST | TCP_ACK, TCP_FIN | TCP_ACK, TCP_PSH | TCP_ACK])
    assert.equal(classifyTcp(replyish), null);
  assert.equal(FLAG_NAMES[TCP_SYN | TCP_FIN], 'FS');
  assert.equal(FLAG_NAMES[TCP_URG], 'U');
  assert.equal(FLAG_NAMES[0], 'none');
});
