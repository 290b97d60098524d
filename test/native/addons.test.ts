// The native addons' own lifecycle, against the real kernel: handles closed twice or after
// libuv let go of them, setups that fail half-way, a tripwire port free again as soon as
// close() returns, and a listener that runs out of descriptors. The AddressSanitizer run
// (asan.test.ts) runs this file against an instrumented build, where a use after free or
// an overflow aborts the process instead of passing unnoticed.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readdirSync, readFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { setImmediate as tick } from 'node:timers/promises';
import { describe, test } from 'node:test';
import { loadAddon } from '../../src/native/addon.js';
import { freePort } from '../../support/free-port.js';
import { prerequisites } from '../../support/prereq.js';

interface Closable {
  close(): void;
}
const tripwire = loadAddon<{
  listen(port: number, banner: Buffer, onConnection: unknown): Closable;
  listenUdp(port: number, onDatagram: unknown): Closable;
}>('tripwire');
const rawbatch = loadAddon<{ open(family: number, protocol: number, watched: Uint8Array, inUse: Uint8Array, onRecords: unknown): Closable }>('rawbatch');
const netlink = loadAddon<{ open(protocol: number, onDatagram?: unknown): Closable & { send(b: Buffer): void; receive(ms: number): Buffer | null } }>('netlink');
const ADDON = new URL('../../src/native/addon.js', import.meta.url).href;
const NETLINK_NETFILTER = 12;

const openFds = (): number => readdirSync('/proc/self/fd').length;

/** Lets libuv run its close callbacks (where the addons free their state). */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await tick();
}

describe('native addons: lifecycle', { concurrency: false }, () => {
  test('tripwire: close() frees the port before it returns, so a restart can bind it at once', async () => {
    const port = await freePort();
    const first = tripwire.listen(port, Buffer.alloc(0), () => undefined);
    first.close();
    const second = tripwire.listen(port, Buffer.alloc(0), () => undefined);
    second.close();
    await settle();
  });

  test('tripwire: a port outside 1-65535 or not a number is refused before any socket is made', () => {
    for (const listen of [(port: unknown) => tripwire.listen(port as number, Buffer.alloc(0), () => undefined), (port: unknown) => tripwire.listenUdp(port as number, () => undefined)]) {
      for (const port of [0, 65536, -1]) assert.throws(() => listen(port), { name: 'RangeError', message: 'port must be 1-65535' });
      assert.throws(() => listen('80'), { name: 'TypeError', message: 'port must be a number' });
    }
  });

  test('tripwire: close() again after the handle was freed does nothing', async () => {
    const port = await freePort();
    const h = tripwire.listen(port, Buffer.alloc(0), () => undefined);
    h.close();
    await settle();
    h.close();
    await settle();
  });

  test('tripwire: a listen that fails after bind() leaves no socket and no port behind', async () => {
    const port = await freePort();
    const before = openFds();
    for (let i = 0; i < 5; i++) assert.throws(() => tripwire.listen(port, Buffer.alloc(0), 42));
    assert.equal(openFds(), before, 'descriptors left open by failed listens');
    const h = tripwire.listen(port, Buffer.alloc(0), () => undefined);
    h.close();
    await settle();
  });

  test('tripwire UDP: each datagram comes with its destination and interface; a port in use is refused; close() twice is fine', async () => {
    const port = await freePort();
    const got: [string, string, number][] = [];
    const h = tripwire.listenUdp(port, (source: string, destination: string, ifindex: number) => got.push([source, destination, ifindex]));
    assert.throws(() => tripwire.listenUdp(port, () => undefined), (e: NodeJS.ErrnoException) => e.code === 'EADDRINUSE');
    const lo = Number(readFileSync('/sys/class/net/lo/ifindex', 'utf8'));
    const send = (type: 'udp4' | 'udp6', to: string, broadcast = false) =>
      new Promise<void>((resolve, reject) => {
        const s = createSocket(type);
        s.bind(0, () => {
          if (broadcast) s.setBroadcast(true);
          s.send('x', port, to, (err) => (s.close(), err ? reject(err) : resolve()));
        });
      });
    await send('udp4', '127.0.0.1');
    await send('udp6', '::1');
    // Loopback's broadcast address: the datagram says it was sent to everyone, not to 127.0.0.1.
    await send('udp4', '127.255.255.255', true);
    for (let i = 0; got.length < 3 && i < 100; i++) await new Promise((r) => setTimeout(r, 10));
    h.close();
    h.close();
    await settle();
    assert.deepEqual(
      got.map(([source, destination, ifindex]) => [source.replace(/^::ffff:/, ''), destination.replace(/^::ffff:/, ''), ifindex]),
      [
        ['127.0.0.1', '127.0.0.1', lo],
        ['::1', '::1', lo],
        ['127.0.0.1', '127.255.255.255', lo],
      ],
    );
  });

  test('rawbatch: close() again after the reader was freed does nothing; a late failure leaks nothing', async (t) => {
    if (!prerequisites(t, { root: true })) return;
    const watched = new Uint8Array(65536);
    const inUse = new Uint8Array(65536);
    watched[9] = 1;
    const r = rawbatch.open(4, 6, watched, inUse, () => undefined);
    r.close();
    await settle();
    r.close();
    await settle();
    const before = openFds();
    for (let i = 0; i < 5; i++) assert.throws(() => rawbatch.open(4, 6, watched, inUse, 42));
    assert.equal(openFds(), before, 'raw sockets left open by failed opens');
  });

  test('netlink: a listening socket closed twice, and used after close, fails cleanly', async (t) => {
    if (!prerequisites(t, { root: true })) return;
    const s = netlink.open(NETLINK_NETFILTER, () => undefined);
    s.close();
    await settle();
    s.close();
    assert.throws(() => s.send(Buffer.alloc(16)), /closed/);
    assert.throws(() => s.receive(0), /closed/);
    const plain = netlink.open(NETLINK_NETFILTER);
    plain.close();
    plain.close();
    assert.throws(() => plain.send(Buffer.alloc(16)), /closed/);
  });

  test('tripwire: out of descriptors with no spare, the listener waits instead of spinning, and recovers', async (t) => {
    if (!prerequisites(t, { tools: ['sh'] })) return;
    const port = await freePort();
    // The child takes every descriptor but one, listens with it (no spare left to open),
    // and measures its own CPU while a connection waits in the accept queue.
    const script = `
      import { openSync, closeSync } from 'node:fs';
      import { loadAddon } from ${JSON.stringify(ADDON)};
      const tripwire = loadAddon('tripwire');
      const held = [];
      try { for (;;) held.push(openSync('/dev/null', 'r')); } catch {}
      closeSync(held.pop());
      let reported = 0;
      const h = tripwire.listen(${port}, Buffer.alloc(0), () => reported++);
      process.stdout.write('listening\\n');
      process.stdin.once('data', () => {
        const cpu0 = process.cpuUsage();
        const wall0 = performance.now();
        setTimeout(() => {
          const used = process.cpuUsage(cpu0);
          const ratio = (used.user + used.system) / 1000 / (performance.now() - wall0);
          for (const fd of held.splice(0, 20)) closeSync(fd);
          setTimeout(() => {
            process.stdout.write(JSON.stringify({ ratio, reported }) + '\\n');
            h.close();
            process.exit(0);
          }, 1000);
        }, 1500);
      });
    `;
    const child = spawn('sh', ['-c', `ulimit -n 256 && exec "${process.execPath}" --input-type=module -e '${script.replace(/'/g, "'\\''")}'`], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: process.env,
    });
    let out = '';
    let err = '';
    child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
    const lines = (async function* () {
      for await (const chunk of child.stdout!) {
        out += (chunk as Buffer).toString();
        yield out;
      }
    })();
    const waitFor = async (re: RegExp): Promise<RegExpExecArray> => {
      for (;;) {
        const m = re.exec(out);
        if (m) return m;
        const next = await lines.next();
        if (next.done) throw new Error(`child ended without ${re}: ${out}\n${err}`);
      }
    };
    await waitFor(/listening/);
    const client: Socket = await new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.on('error', reject);
    });
    child.stdin!.write('go\n');
    const m = await waitFor(/(\{.*\})\n/);
    client.destroy();
    const { ratio, reported } = JSON.parse(m[1]!) as { ratio: number; reported: number };
    t.diagnostic(`CPU while out of descriptors: ${(ratio * 100).toFixed(0)}% of one core; connections reported after recovery: ${reported}`);
    assert.ok(ratio < 0.3, `the listener spins: ${(ratio * 100).toFixed(0)}% CPU with a connection it cannot accept`);
    assert.equal(reported, 1, 'the waiting connection was not reported once descriptors were free');
  });
});
