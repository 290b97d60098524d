// An IPv6 packet from an IPv4-mapped address (::ffff:a.b.c.d) is never on the wire (RFC 4291
// 2.5.5.2). Linux drops it before the raw sockets and the nftables hooks since 5.3; on an
// older kernel the fast path's log would read it as the IPv4 address it names, and an
// attacker with IPv6 reach could have any IPv4 address blocked. The nflog reader refuses it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Probe } from '../../src/engine/probe.js';
import { attr, cstring } from '../../src/net/netlink.js';
import { KernelDetector, PREFIX_BLOCKED } from '../../src/respond/fast-path/nflog-reader.js';
import { TCP_SYN } from '../../src/net/packet.js';
import { tcp } from '../../support/packets.js';

const NFPROTO_IPV6 = 10;
const NFULA_PAYLOAD = 9;
const NFULA_PREFIX = 10;

/** One nflog packet message (nlmsghdr, nfgenmsg, prefix and payload) as the kernel sends it. */
function nflogDatagram(source: number[], transport: number[]): Buffer {
  const ip6 = Buffer.alloc(40);
  ip6[0] = 0x60;
  ip6.writeUInt16BE(transport.length, 4);
  ip6[6] = 6; // TCP
  ip6[7] = 64;
  ip6.set(source, 8);
  ip6.set([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1], 24);
  const body = Buffer.concat([Buffer.from([NFPROTO_IPV6, 0, 0x6b, 0x70]), attr(NFULA_PREFIX, cstring(PREFIX_BLOCKED)), attr(NFULA_PAYLOAD, Buffer.concat([ip6, Buffer.from(transport)]))]);
  const header = Buffer.alloc(16);
  header.writeUInt32LE(16 + body.length, 0);
  header.writeUInt16LE((4 << 8) | 0, 4); // NFNL_SUBSYS_ULOG, NFULNL_MSG_PACKET
  return Buffer.concat([header, body]);
}

test('the nflog reader: a logged IPv6 SYN from an IPv4-mapped source is unreadable, never a probe from that IPv4 address', () => {
  const probes: Probe[] = [];
  const spoofed: Probe[] = [];
  const reader = new KernelDetector({ modes: { tcp: 'stealth' }, onProbe: (p) => probes.push(p), onSpoofed: (p) => spoofed.push(p) });
  const feed = (datagram: Buffer) => (reader as unknown as { onDatagram(d: Buffer): void }).onDatagram(datagram);
  const syn = tcp(1524, TCP_SYN);

  feed(nflogDatagram([...Array(10).fill(0), 0xff, 0xff, 198, 51, 100, 7], syn));
  assert.deepEqual([probes.length, spoofed.length, reader.unreadable], [0, 0, 1]);

  // The same packet from a real IPv6 source is a probe: the message itself was well formed.
  feed(nflogDatagram([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 7], syn));
  assert.equal(probes.length, 1);
  assert.equal(probes[0]!.source.text, '2001:db8::7');
  assert.equal(probes[0]!.port, 1524);
  assert.equal(probes[0]!.blockedInKernel, true);
});
