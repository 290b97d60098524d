// Stealth detector benchmark, in test namespaces: an `hping3 --flood` SYN load against
// (1) a raw-socket reader that does nothing (the baseline, in the same run) and (2) the
// sentry in stealth mode. Reports packets/s read, kernel drops on the raw sockets
// (/proc/net/raw), CPU per packet and per million packets; then the latency from the
// first probe to the source being in the nftables set, p50/p99 over many sources, and the
// cost of one set addition by netlink (the sentry's path) against spawning nft per block.
// Then the kernel fast path against the raw path (bench/fastpath.ts), Debian's portsentry
// against the sentry under the same flood (bench/portsentry.ts), and the block set at
// `--entries` addresses (bench/blockset.ts). Then the zero-drop ceiling of the raw path,
// the fast path and Debian's portsentry under the C sender (bench/ceiling.ts).
// `npm run bench:detector -- [--seconds N] [--interval-us N] [--sources N] [--trials N]
//   [--entries N] [--adds N] [--start-rate N] [--steps N] [--ceiling-sources N]
//   [--pin yes|no] [--part P] [--out FILE]`;
// needs root. --interval-us paces the load (hping3 -i uN) instead of flooding; --part
// throughput|latency|fastpath|portsentry|blockset|ceiling runs only that part.
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { TARGET_V4, TestNet } from '../support/netns.js';
import { SentryProcess } from '../support/sentry-process.js';
import { blockSetFigures } from './blockset.js';
import { ceilingFigures } from './ceiling.js';
import { fastPathFigures } from './fastpath.js';
import { portsentryFigures } from './portsentry.js';
import { formatTable, progress, type Figure } from './harness.js';
import { cpuSeconds, cpuTimes, flood, rawDrops, sentryMetric } from './proc.js';

/** The pid of the node process inside `ip netns exec` (it execs, so it is the same pid). */
const pidOf = (child: ChildProcess): number => child.pid!;

const BASELINE_READER = `
  const raw = require(${JSON.stringify(resolve('node_modules/raw-socket'))});
  const s = raw.createSocket({ addressFamily: raw.AddressFamily.IPv4, protocol: raw.Protocol.TCP, bufferSize: 128 });
  let n = 0;
  s.on('message', () => { n++; });
  process.on('SIGTERM', () => { console.log(n); process.exit(0); });
  console.log('up');`;

interface FloodResult {
  packets: number;
  drops: number;
  cpu: number;
  /** The user-space part of `cpu`. */
  user: number;
  seconds: number;
}

async function baselineRun(net: TestNet, seconds: number, intervalUs: number): Promise<FloodResult> {
  const reader = net.spawn(net.target, [process.execPath, '-e', BASELINE_READER]);
  let out = '';
  reader.stdout!.on('data', (d) => (out += d));
  let err = '';
  reader.stderr!.on('data', (d) => (err += d));
  await new Promise<void>((resolve, reject) => {
    reader.stdout!.once('data', () => resolve());
    reader.once('exit', (code) => reject(new Error(`baseline reader exited (${code}): ${err.trim()}`)));
  });
  const drops0 = await rawDrops(net);
  const cpu0 = cpuSeconds(pidOf(reader));
  const user0 = cpuTimes(pidOf(reader)).user;
  const t0 = performance.now();
  await flood(net, seconds, { intervalUs });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pidOf(reader)) - cpu0;
  const user = cpuTimes(pidOf(reader)).user - user0;
  const drops = (await rawDrops(net)) - drops0;
  reader.kill('SIGTERM');
  await new Promise((r) => reader.once('close', r));
  return { packets: Number(out.split('\n')[1]), drops, cpu, user, seconds: elapsed };
}

const POLICY = (spec: string) => `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: bench}
spec:
  files: {history: "", blocked: ""}
${spec}`;

async function sentryRun(net: TestNet, seconds: number, intervalUs: number): Promise<FloodResult> {
  const file = '/tmp/kps-bench-detector.yaml';
  // Alert only: one source floods a tripwire port; after its first probe every packet is
  // parsed, looked up and counted against the already-alerted source.
  writeFileSync(file, POLICY('  tcp: {mode: stealth, ports: [1]}\n  udp: {mode: "off"}\n  response: {tcp: alert, firewall: none}\n'));
  const sentry = await SentryProcess.start(net, { args: ['--policy', file, '--log-level', 'info', '--metrics-address', '127.0.0.1:9109'] }, ['--flush-on-exit']);
  const pid = pidOf(sentry.child);
  const drops0 = await rawDrops(net);
  const packets0 = await sentryMetric(net, 'portsentry_packets_inspected_total');
  const cpu0 = cpuSeconds(pid);
  const user0 = cpuTimes(pid).user;
  const t0 = performance.now();
  await flood(net, seconds, { intervalUs });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const user = cpuTimes(pid).user - user0;
  const drops = (await rawDrops(net)) - drops0;
  await new Promise((r) => setTimeout(r, 1100)); // one housekeeping pass publishes the counters
  const packets = (await sentryMetric(net, 'portsentry_packets_inspected_total')) - packets0;
  await sentry.stop();
  return { packets, drops, cpu, user, seconds: elapsed };
}

async function latencyRun(net: TestNet, sources: number): Promise<number[]> {
  const file = '/tmp/kps-bench-latency.yaml';
  writeFileSync(
    file,
    POLICY('  tcp: {mode: stealth, ports: [1]}\n  udp: {mode: "off"}\n  response: {tcp: block, firewall: nftables, maxBlocksPerMinute: 100000}\n'),
  );
  const sentry = await SentryProcess.start(net, { args: ['--policy', file] }, ['--flush-on-exit']);
  // One SYN from each of many sources in the test range, 20 ms apart, from one process.
  await net.exec(net.scanner, [process.execPath, SYN_SENDER, '--target', TARGET_V4, '--count', String(sources)], { timeoutMs: 600_000 });
  await new Promise((r) => setTimeout(r, 500));
  await sentry.stop();
  return sentry.lines.filter((l) => l.msg === 'response in place').map((l) => Number(l.latencyMs));
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

const FIREWALL_CHILD = fileURLToPath(new URL('./firewall-child.js', import.meta.url));
const SYN_SENDER = fileURLToPath(new URL('./syn-sender.js', import.meta.url));

/** Milliseconds per set addition, netlink and spawned nft, by set size (bench/firewall-child.ts). */
async function firewallRun(net: TestNet, adds: number): Promise<Record<string, { netlink: number[]; spawn: number[] }>> {
  const { stdout } = await net.exec(net.target, [process.execPath, FIREWALL_CHILD, '--adds', String(adds)], { timeoutMs: 300_000 });
  return JSON.parse(stdout) as Record<string, { netlink: number[]; spawn: number[] }>;
}

const PARTS = ['all', 'throughput', 'latency', 'fastpath', 'portsentry', 'blockset', 'ceiling'];

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      sources: { type: 'string', default: '200' },
      'interval-us': { type: 'string', default: '0' },
      part: { type: 'string', default: 'all' },
      trials: { type: 'string', default: '50' },
      entries: { type: 'string', default: '100000' },
      adds: { type: 'string', default: '300' },
      'start-rate': { type: 'string', default: '50000' },
      steps: { type: 'string', default: '4' },
      'ceiling-sources': { type: 'string', default: '1024' },
      pin: { type: 'string', default: 'yes' },
      out: { type: 'string', default: 'bench-results/detector.json' },
    },
  });
  const part = values.part!;
  if (!PARTS.includes(part)) {
    process.stderr.write(`--part is all, ${PARTS.slice(1).join(', ')}, not ${JSON.stringify(part)}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench:detector needs root (network namespaces, raw sockets, nftables)\n');
    return 2;
  }
  const seconds = Number(values.seconds);
  const intervalUs = Number(values['interval-us']);
  const net = await TestNet.create();
  const figures: Figure[] = [];
  try {
    const all = part === 'all';
    if (all || part === 'throughput') figures.push(...(await throughputFigures(net, seconds, intervalUs)));
    if (all || part === 'latency') figures.push(...(await latencyFigures(net, Number(values.sources))));
    if (all || part === 'fastpath') figures.push(...(await fastPathFigures(net, seconds, Number(values.trials))));
    if (all || part === 'portsentry') figures.push(...(await portsentryFigures(net, seconds)));
    if (all || part === 'blockset') figures.push(...(await blockSetFigures(net, seconds, Number(values.entries), Number(values.adds), ['nftables', 'iptables'])));
    if (all || part === 'ceiling')
      figures.push(
        ...(await ceilingFigures(net, { seconds, startRate: Number(values['start-rate']), steps: Number(values.steps), sources: Number(values['ceiling-sources']), pin: values.pin !== 'no' })),
      );
  } finally {
    await net.destroy();
  }
  const out = resolve(values.out!);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(
    out,
    `${JSON.stringify({ benchmark: 'detector', timestamp: new Date().toISOString(), machine: { node: process.version, cpuModel: cpus()[0]?.model, cores: cpus().length }, figures }, null, 2)}\n`,
  );
  process.stdout.write(`kube-portsentry stealth detector benchmark\n\n${formatTable(figures)}\n\nJSON written to ${out}\n`);
  return 0;
}

async function throughputFigures(net: TestNet, seconds: number, intervalUs: number): Promise<Figure[]> {
  const figures: Figure[] = [];
  const load = intervalUs > 0 ? `hping3 -i u${intervalUs}` : 'hping3 --flood';
  progress(`baseline: raw-socket reader doing nothing, ${seconds} s of ${load}`);
  const base = await baselineRun(net, seconds, intervalUs);
  progress(`sentry stealth mode, ${seconds} s of ${load}`);
  const sentry = await sentryRun(net, seconds, intervalUs);
  const perPacketUs = (r: FloodResult) => (r.cpu / Math.max(1, r.packets)) * 1e6;
  const offered = (r: FloodResult) => (r.packets + r.drops) / r.seconds;
  const add = (id: string, name: string, value: number, unit: string, baseValue?: number) =>
    figures.push({
      id,
      name,
      value,
      unit,
      ...(baseValue !== undefined ? { baseline: 'raw reader', baselineId: `${id}.baseline`, ratio: value / baseValue } : {}),
    });
  add('detector.baseline.read', 'baseline reader: packets read/s', base.packets / base.seconds, 'packets/s');
  add('detector.baseline.drops', 'baseline reader: socket drops', base.drops, 'packets');
  add('detector.baseline.cpu', 'baseline reader: CPU per packet', perPacketUs(base), 'us');
  add('detector.baseline.cpu-user', 'baseline reader: user-space CPU per packet', (base.user / Math.max(1, base.packets)) * 1e6, 'us');
  add('detector.offered', 'flood offered to the sentry (read + dropped)', offered(sentry), 'packets/s');
  add('detector.read', 'sentry: packets read/s', sentry.packets / sentry.seconds, 'packets/s', base.packets / base.seconds);
  add('detector.drops', 'sentry: socket drops', sentry.drops, 'packets');
  add('detector.drop-ratio', 'sentry: share dropped', sentry.drops / Math.max(1, sentry.packets + sentry.drops), 'fraction');
  add('detector.cpu', 'sentry: CPU per packet', perPacketUs(sentry), 'us', perPacketUs(base));
  add(
    'detector.cpu-user',
    'sentry: user-space CPU per packet',
    (sentry.user / Math.max(1, sentry.packets)) * 1e6,
    'us',
    (base.user / Math.max(1, base.packets)) * 1e6,
  );
  add('detector.cpu-per-million', 'sentry: CPU per million packets', (sentry.cpu / Math.max(1, sentry.packets)) * 1e6, 's');
  return figures;
}

async function latencyFigures(net: TestNet, sources: number): Promise<Figure[]> {
  progress(`latency: first probe to nftables set, ${sources} sources`);
  const lat = (await latencyRun(net, sources)).sort((a, b) => a - b);
  const figures: Figure[] = [
    { id: 'latency.p50', name: 'probe to firewall set, p50', value: quantile(lat, 0.5), unit: 'ms', samples: lat },
    { id: 'latency.p99', name: 'probe to firewall set, p99', value: quantile(lat, 0.99), unit: 'ms', extra: { samples: lat.length } },
  ];
  progress(`one set addition: netlink against spawning nft, ${sources} each, empty set and 10,000 entries`);
  for (const [size, r] of Object.entries(await firewallRun(net, sources))) {
    const netlink = r.netlink.sort((a, b) => a - b);
    const spawn = r.spawn.sort((a, b) => a - b);
    for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
      const id = `firewall.add.${size}.${label}`;
      figures.push(
        { id: `${id}.spawn`, name: `set addition, ${size} in set, spawned nft, ${label}`, value: quantile(spawn, q), unit: 'ms', extra: { samples: spawn.length } },
        {
          id: `${id}.netlink`,
          name: `set addition, ${size} in set, netlink, ${label}`,
          value: quantile(netlink, q),
          unit: 'ms',
          baseline: 'spawned nft',
          baselineId: `${id}.spawn`,
          ratio: quantile(netlink, q) / quantile(spawn, q),
          extra: { samples: netlink.length },
        },
      );
    }
  }
  return figures;
}

process.exitCode = await main();
