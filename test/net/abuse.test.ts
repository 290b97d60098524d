// Abuse of the standalone sentry in test namespaces: a flood of forged sources against a
// small source cap, more scanners than the block rate limit allows, forged protected
// sources, hostile reverse-DNS names, hostile port strings.
//
// Forged sources come from 198.19.0.0/16 (inside 198.18.0.0/15, the benchmarking range);
// the target's route to it is its default route, through a gateway nothing answers for, so
// the forged probes pass the reverse-path check and the answers stop at the neighbour lookup
// before they leave; a counter in the scanner namespace checks that none arrived.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test, type TestContext } from 'node:test';
import { ClassicConfError, classicToPolicy, parseClassicConf } from '../../src/policy/classic.js';
import { PolicyError, parsePolicyYaml } from '../../src/policy/load.js';
import { GATEWAY_NOWHERE_V4, SCANNER_V4, TARGET_V4, connectFrom } from '../../support/netns.js';
import { CLI, SentryProcess } from '../../support/sentry-process.js';
import { useTestHosts } from '../../support/suite.js';

const TOOLS = ['ip', 'nmap', 'hping3', 'nft'];
const FLOOD = fileURLToPath(new URL('../../support/spoof-flood.js', import.meta.url));
const METRICS = '127.0.0.1:9109';

const policy = (spec: string) => `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: abuse
spec:
${spec}`;

/** The value of one series in Prometheus text (0 when absent). */
function metric(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(labels ? `${name}{` : `${name} `) && (!labels || l.includes(labels)));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('abuse', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: TOOLS, modules: ['raw-socket'], servicePort: 8080 });
  const ready = (t: TestContext) => hosts.ready(t);
  let dir: string;
  let targetDev: string;
  let scannerDev: string;
  const ns = (which: 'scanner' | 'target') => (which === 'scanner' ? hosts.net.scanner : hosts.net.target);
  const sh = async (which: 'scanner' | 'target', ...argv: string[]) => (await hosts.net.exec(ns(which), argv)).stdout;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kps-abuse-'));
    if (process.getuid?.() !== 0) return;
    const veth = async (which: 'scanner' | 'target') => /^\d+: ([^:@]+)/.exec(await sh(which, 'ip', '-o', 'link', 'show', 'type', 'veth'))![1]!;
    [targetDev, scannerDev] = [await veth('target'), await veth('scanner')];
    // The target accepts forged sources (no reverse-path check) and its own address as a
    // source (accept_local), so the sentry sees them; its answers still go nowhere.
    for (const key of ['all.rp_filter', 'default.rp_filter', `${targetDev}.rp_filter`]) await sh('target', 'sysctl', '-qw', `net.ipv4.conf.${key}=0`);
    await sh('target', 'sysctl', '-qw', `net.ipv4.conf.${targetDev}.accept_local=1`);
    // Counts any packet for the forged range that reaches the scanner side: there must be none.
    await sh('scanner', 'nft', 'add table inet kps_guard; add chain inet kps_guard in { type filter hook prerouting priority -300; }; add rule inet kps_guard in ip daddr 198.19.0.0/16 counter');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function start(spec: string): Promise<SentryProcess> {
    const file = join(dir, `policy-${Date.now()}.yaml`);
    await writeFile(file, policy(spec));
    return hosts.start({ args: ['--policy', file, '--metrics-address', METRICS] });
  }
  const scrape = async () => sh('target', process.execPath, '-e', `fetch('http://${METRICS}/metrics').then(r => r.text()).then(t => process.stdout.write(t))`);
  const blocked4 = async () => (await sh('target', 'nft', 'list', 'set', 'inet', 'kube_portsentry', 'blocked4')).match(/\d+\.\d+\.\d+\.\d+/g) ?? [];
  const guardCount = async () => Number(/counter packets (\d+)/.exec(await sh('scanner', 'nft', 'list', 'table', 'inet', 'kps_guard'))![1]);

  test('a flood of 60,000 forged sources: the tracked sources stay under the cap, evictions are counted, memory stays bounded, and a real scanner is still caught', async (t) => {
    if (!ready(t)) return;
    assert.match(await sh('target', 'ip', 'route', 'get', '198.19.0.1'), new RegExp(`via ${GATEWAY_NOWHERE_V4.replaceAll('.', '\\.')} `), 'answers to the forged range go to a gateway nothing answers for');
    const CAP = 2000;
    const OLD_SPACE_MB = 80;
    const SOURCES = 60_000;
    const file = join(dir, 'flood.yaml');
    await writeFile(file, policy(`  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [1, 11, 79, 111]}
  udp: {mode: "off"}
  trigger: {count: 2, maxTrackedSources: ${CAP}}
  response: {tcp: block, firewall: nftables}
`));
    // V8 collects lazily: with room to spare the heap grows under a flood whatever is
    // retained. With the old space capped at 80 MB, memory held per source would end the
    // process (about 35 MB for 60,000 tracked sources on top of a 40 MB heap).
    const sentry = SentryProcess.attach(
      hosts.net.spawn(hosts.net.target, [
        'env', `NODE_OPTIONS=--max-old-space-size=${OLD_SPACE_MB}`, process.execPath, CLI, 'run', '--policy', file, '--metrics-address', METRICS,
        // Files and socket of its own, and nothing left for the next test's sentry.
        '--state-dir', join(dir, 'flood-state'), '--socket', join(dir, 'flood.sock'), '--flush-on-exit',
      ]),
    );
    await sentry.waitFor((l) => l.msg === 'sentry ready', 15_000);
    const baseline = await scrape();
    const rssStart = metric(baseline, 'process_resident_memory_bytes');
    // Scrapes every 250 ms from inside the target until stopped: one JSON line each.
    const scraper: ChildProcess = hosts.net.spawn(hosts.net.target, [
      process.execPath,
      '-e',
      `const pick = (t, n) => Number((t.split('\\n').find((l) => l.startsWith(n + ' ')) ?? ' 0').split(' ').pop());
       setInterval(async () => {
         const t = await (await fetch('http://${METRICS}/metrics')).text();
         console.log(JSON.stringify({ tracked: pick(t, 'portsentry_tracked_sources'), evicted: pick(t, 'portsentry_tracked_sources_evicted_total'), rss: pick(t, 'process_resident_memory_bytes'), heap: pick(t, 'nodejs_heap_size_used_bytes') }));
       }, 250);`,
    ]);
    const samples: { tracked: number; evicted: number; rss: number; heap: number }[] = [];
    let partial = '';
    scraper.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      const lines = (partial + chunk).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l) samples.push(JSON.parse(l) as (typeof samples)[number]);
    });
    try {
      const started = Date.now();
      const flood = sh('scanner', process.execPath, FLOOD, '--target', TARGET_V4, '--port', '1', '--count', String(SOURCES), '--rate', '8000');
      await new Promise((r) => setTimeout(r, 2000));
      // A real scanner in the middle of the flood.
      await sh('scanner', 'nmap', '-sS', '-Pn', '-n', '--max-retries', '1', '-p', '1,11,79,111', TARGET_V4);
      const caught = await sentry.waitFor((l) => l.msg === 'scan detected: blocking' && l.source === SCANNER_V4, 20_000);
      assert.match(await flood, new RegExp(`sent ${SOURCES}`));
      const floodMs = Date.now() - started;
      await new Promise((r) => setTimeout(r, 2500)); // two housekeeping rounds
      const end = await scrape();
      scraper.kill();
      const forged = new Set(sentry.lines.filter((l) => l.msg.startsWith('attackalert:') && String(l.source).startsWith('198.19.')).map((l) => l.source));
      const maxTracked = Math.max(...samples.map((s) => s.tracked), metric(end, 'portsentry_tracked_sources'));
      const evicted = metric(end, 'portsentry_tracked_sources_evicted_total');
      const rssPeak = Math.max(...samples.map((s) => s.rss), metric(end, 'process_resident_memory_bytes'));
      const heapPeak = Math.max(...samples.map((s) => s.heap));
      process.stdout.write(
        `# flood: ${forged.size} forged sources seen in ${floodMs} ms, tracked at most ${maxTracked} (cap ${CAP}), ${evicted} evicted, ` +
          `RSS ${(rssStart / 2 ** 20).toFixed(0)} MB before, ${(rssPeak / 2 ** 20).toFixed(0)} MB at peak, heap used at most ${(heapPeak / 2 ** 20).toFixed(0)} MB ` +
          `(${samples.length} scrapes); the scanner blocked after ${(caught.ports as string[]).length} ports\n`,
      );
      assert.ok(forged.size >= 50_000, `only ${forged.size} forged sources reached the engine`);
      assert.ok(samples.length >= 10, 'the gauge was sampled during the flood');
      assert.ok(maxTracked <= CAP, `tracked ${maxTracked} sources, over the cap of ${CAP}`);
      assert.ok(evicted >= forged.size - CAP, `${evicted} evictions counted for ${forged.size} sources against a cap of ${CAP}`);
      assert.equal(sentry.child.exitCode, null, `the sentry died: ${sentry.stderr.join('').slice(-500)}`);
      assert.ok(heapPeak < OLD_SPACE_MB * 2 ** 20, `heap used reached ${(heapPeak / 2 ** 20).toFixed(0)} MB`);
      assert.ok(rssPeak - rssStart < 64 * 2 ** 20, `RSS grew by ${((rssPeak - rssStart) / 2 ** 20).toFixed(0)} MB`);
      const set = await blocked4();
      assert.deepEqual(set, [SCANNER_V4], 'the scanner is blocked, no forged source is');
      assert.match(await sh('scanner', 'nmap', '-sS', '-Pn', '-n', '--max-retries', '1', '-p', '2', TARGET_V4), /2\/tcp\s+filtered/, 'the scanner gets no answer');
      assert.equal(await guardCount(), 0, 'no answer to a forged source reached the scanner side');
    } finally {
      scraper.kill();
      await sentry.stop();
    }
  });

  test('more first-seen scanners than maxBlocksPerMinute allows them: its upper half are blocked, the rest alerted and counted as rate-limited', async (t) => {
    if (!ready(t)) return;
    const BUDGET = 4;
    const N = BUDGET - Math.floor(BUDGET / 2); // the lower half is kept for sources that come back
    const SCANNERS = 8;
    const sentry = await start(`  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [1]}
  udp: {mode: "off"}
  trigger: {count: 0}
  response: {tcp: block, firewall: nftables, maxBlocksPerMinute: ${BUDGET}}
`);
    // One SYN from each of 8 forged sources, within a second (the bucket refills one per 15 s).
    await sh('scanner', process.execPath, FLOOD, '--target', TARGET_V4, '--port', '1', '--first', '1001', '--count', String(SCANNERS), '--rate', '100');
    const decided = () => sentry.lines.filter((l) => l.msg === 'scan detected: blocking' || (l.msg === 'scan detected' && l.reason === 'rate-limited'));
    await sentry.waitFor(() => decided().length >= SCANNERS, 10_000).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 1200));
    const blocking = sentry.lines.filter((l) => l.msg === 'scan detected: blocking').map((l) => l.source);
    const limited = sentry.lines.filter((l) => l.msg === 'scan detected' && l.reason === 'rate-limited').map((l) => l.source);
    assert.equal(blocking.length, N, `blocked: ${blocking.join(' ')}`);
    assert.equal(limited.length, SCANNERS - N, `rate-limited: ${limited.join(' ')}`);
    assert.deepEqual([...blocking, ...limited].sort(), Array.from({ length: SCANNERS }, (_, i) => `198.19.3.${233 + i}`).sort());
    assert.deepEqual((await blocked4()).sort(), [...blocking].sort(), 'the firewall holds exactly the N blocked');
    const text = await scrape();
    assert.equal(metric(text, 'portsentry_alerts_total', 'reason="rate-limited"'), SCANNERS - N);
    assert.equal(metric(text, 'portsentry_blocks_total', 'action="block"'), N);
    assert.equal(await guardCount(), 0);
  });

  test('forged sources equal to protected addresses (the target itself, an ignored address) are never blocked', async (t) => {
    if (!ready(t)) return;
    const IGNORED = '198.18.0.77';
    const OTHER = '198.18.0.78';
    const sentry = await start(`  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [1, 11]}
  udp: {mode: "off"}
  trigger: {count: 0}
  ignore: ["${IGNORED}/32", "127.0.0.0/8"]
  response: {tcp: block, firewall: nftables}
`);
    const hping = (source: string, port: number) =>
      hosts.net.exec(hosts.net.scanner, ['hping3', '-c', '2', '-i', 'u20000', '-S', '-a', source, '-p', String(port), TARGET_V4]).catch(() => undefined);
    for (const source of [TARGET_V4, IGNORED]) for (const port of [1, 11]) await hping(source, port);
    // The target's own address arriving from outside would be answered by loopback, not the
    // interface it came in on: the reverse-path check counts it as spoofed before anything else.
    await sentry.waitFor((l) => l.msg.startsWith('probe with a forged source') && l.source === TARGET_V4);
    const ignored = await sentry.waitFor((l) => l.msg === 'probe from ignored source' && l.source === IGNORED);
    assert.equal(ignored.reason, 'ignore-list');
    // The control: the same forged packet from an address nobody protects is blocked.
    await hping(OTHER, 1);
    await sentry.waitFor((l) => l.msg === 'response in place' && l.source === OTHER);
    assert.deepEqual(await blocked4(), [OTHER]);
    assert.ok(!sentry.lines.some((l) => l.msg.startsWith('scan detected') && (l.source === TARGET_V4 || l.source === IGNORED)));
    const text = await scrape();
    assert.ok(metric(text, 'portsentry_probes_spoofed_total', 'protocol="tcp"') >= 2);
    assert.ok(metric(text, 'portsentry_probes_ignored_total', 'reason="ignore-list"') >= 2);
  });

  describe('hostile reverse-DNS names never reach a command', () => {
    const marker = join(tmpdir(), `kps-pwned-${process.pid}`);
    const names: [string, string][] = [
      ['198.18.0.11', `$(touch ${marker})`],
      ['198.18.0.12', `a;touch ${marker}`],
      ['198.18.0.13', `\`touch ${marker}\``],
      ['198.18.0.14', 'evil.example\nHost: 192.0.2.1'],
      ['198.18.0.15', Array.from({ length: 4 }, () => 'a'.repeat(63)).join('.')],
      ['198.18.0.16', 'scanner-ok.example'],
    ];
    let resolver: ChildProcess | undefined;
    const queries: string[] = [];
    let netnsDir = '';
    const hadNetnsDir = existsSync('/etc/netns');

    after(async () => {
      resolver?.kill();
      if (netnsDir) await rm(netnsDir, { recursive: true, force: true });
      // /etc/netns itself goes too when this test made it and nobody else put anything there.
      if (netnsDir && !hadNetnsDir) await rmdir('/etc/netns').catch(() => undefined);
      await rm(marker, { force: true });
    });

    test('a PTR answer with shell syntax, newlines or 255 characters: the command gets the address, the files the address, nothing runs', async (t) => {
      if (!ready(t)) return;
      // `ip netns exec` mounts /etc/netns/<ns>/resolv.conf over /etc/resolv.conf: the sentry
      // asks a resolver on the target's own loopback, which answers every PTR with a name above.
      netnsDir = join('/etc/netns', hosts.net.target);
      await mkdir(netnsDir, { recursive: true });
      await writeFile(join(netnsDir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
      const table = Object.fromEntries(names.map(([ip, name]) => [ip.split('.').reverse().join('.') + '.in-addr.arpa', name]));
      resolver = hosts.net.spawn(hosts.net.target, [
        process.execPath,
        '-e',
        `const table = ${JSON.stringify(table)};
         const socket = require('node:dgram').createSocket('udp4');
         socket.on('message', (q, peer) => {
           // Question: labels from byte 12, then type and class.
           const labels = []; let i = 12;
           while (i < q.length && q[i] !== 0) { labels.push(q.subarray(i + 1, i + 1 + q[i]).toString('latin1')); i += 1 + q[i]; }
           const qname = labels.join('.').toLowerCase(); const qend = i + 5;
           console.log(JSON.stringify(qname));
           const name = table[qname];
           const header = Buffer.from([q[0], q[1], 0x84, name ? 0x00 : 0x03, 0, 1, 0, name ? 1 : 0, 0, 0, 0, 0]);
           if (!name) return socket.send(Buffer.concat([header, q.subarray(12, qend)]), peer.port, peer.address);
           const rdata = Buffer.concat([...name.split('.').map((l) => { const b = Buffer.from(l, 'latin1'); return Buffer.concat([Buffer.from([b.length]), b]); }), Buffer.from([0])]);
           const answer = Buffer.concat([Buffer.from([0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60, rdata.length >> 8, rdata.length & 255]), rdata]);
           socket.send(Buffer.concat([header, q.subarray(12, qend), answer]), peer.port, peer.address);
         });
         socket.bind(53, '127.0.0.1', () => console.log(JSON.stringify('ready')));`,
      ]);
      let partial = '';
      await new Promise<void>((resolve, reject) => {
        resolver!.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
          const lines = (partial + chunk).split('\n');
          partial = lines.pop()!;
          for (const l of lines.filter(Boolean)) {
            const said = JSON.parse(l) as string;
            if (said === 'ready') resolve();
            else queries.push(said);
          }
        });
        resolver!.once('exit', (code) => reject(new Error(`resolver exited (${code})`)));
      });
      for (const [ip] of names) await sh('scanner', 'ip', 'addr', 'add', `${ip}/24`, 'dev', scannerDev);

      const argvLog = join(dir, 'argv.log');
      const history = join(dir, 'history');
      const writer = `require('node:fs').appendFileSync(${JSON.stringify(argvLog)}, JSON.stringify(process.argv.slice(1)) + '\\n')`;
      const sentry = await start(`  files: {history: ${JSON.stringify(history)}, blocked: ${JSON.stringify(join(dir, 'blocked'))}}
  tcp: {mode: bind, ports: [1]}
  udp: {mode: "off"}
  trigger: {count: 0}
  response:
    tcp: command
    firewall: none
    resolveHosts: true
    command: ${JSON.stringify([process.execPath, '-e', writer, '$TARGET$', '$PORT$', '$MODE$'])}
`);
      for (const [ip] of names) assert.equal(await connectFrom(hosts.net.scanner, { host: TARGET_V4, port: 1, timeoutMs: 1500, localAddress: ip }), 'open');
      for (const [ip] of names) await sentry.waitFor((l) => l.msg === 'scan detected: running command' && l.source === ip);
      // The history line is written after the lookup; wait for the last of them.
      for (let i = 0; i < 50 && (await readFile(history, 'utf8').catch(() => '')).split('\n').filter(Boolean).length < names.length; i++) await new Promise((r) => setTimeout(r, 100));

      const argvs = (await readFile(argvLog, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
      assert.deepEqual(argvs.map((a) => a.join(' ')).sort(), names.map(([ip]) => `${ip} 1 tcp`).sort(), 'each command got the address, the port and the mode, nothing else');
      const lines = (await readFile(history, 'utf8')).split('\n').filter(Boolean);
      for (const [ip, name] of names) {
        assert.ok(queries.includes(ip.split('.').reverse().join('.') + '.in-addr.arpa'), `the sentry asked for ${ip}'s name`);
        const line = lines.find((l) => l.includes(`/${ip} Port: `));
        assert.ok(line, `a history line for ${ip}`);
        assert.equal(line.split(' Host: ')[1]!.split(' ')[0], `${name === 'scanner-ok.example' ? name : ip}/${ip}`, `${JSON.stringify(name)} is not written, the address is`);
      }
      assert.equal(lines.length, names.length, 'no line was split by a newline in a name');
      assert.equal(existsSync(marker), false, 'nothing was executed');
    });
  });

  test('hostile port strings in a policy and in a classic conf are refused with a clear error', () => {
    const hostile = ['1;reboot', '$(id)', '`id`', '1 2', '1-2-3', '0x10', '\uff11', '1\n2', '-1', '1e3', '79 ', '65536', '1-70000'];
    for (const port of hostile) {
      const text = policy(`  tcp:\n    ports: [1, ${JSON.stringify(port)}]\n`);
      assert.throws(
        () => parsePolicyYaml(text, 'hostile.yaml'),
        (err: Error) => {
          assert.ok(err instanceof PolicyError, String(err));
          assert.match(err.message, /hostile\.yaml:7:\d+: spec\.tcp\.ports\[1\]: (".*" is not a port|port \d+ is not between|.*must be at most)/, err.message);
          return true;
        },
        JSON.stringify(port),
      );
      // A newline cannot be written on one classic line; spaces around an item are trimmed there.
      if (port.includes('\n') || port.endsWith(' ')) continue;
      const conf = `TCP_PORTS="1,${port}"\n`;
      assert.throws(
        () => classicToPolicy(parseClassicConf(conf, '/etc/portsentry/portsentry.conf'), { modes: { tcp: 'bind', udp: 'off' } }),
        (err: Error) => {
          assert.ok(err instanceof ClassicConfError, String(err));
          assert.match(err.message, /^\/etc\/portsentry\/portsentry\.conf:1: TCP_PORTS: (".*" is not a port|port \d+ is not between)/, err.message);
          return true;
        },
        JSON.stringify(port),
      );
    }
  });
});
