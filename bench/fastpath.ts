// The kernel fast path (response.kernelFastPath) against the raw-socket path, in the same
// run (bench/detector.ts --part fastpath):
//  - from outside: a SYN to the tripwire port from a fresh source, then 400 SYNs back to
//    back to a port that is no tripwire (bench/probe-train.ts); the target's counters say
//    whether the probe itself was dropped and how many of the others got through;
//  - the time from the probe to its block: for the raw path, the sentry's own figure,
//    from the kernel's receive stamp of the probe to the netlink ack; the fast path blocks
//    while the kernel handles the probe itself (its counter shows it), so it is zero;
//  - CPU per packet of an hping3 flood, everything it costs (the sender, which the veth
//    charges with the target's receive path, ksoftirqd, the sentry), with no sentry at
//    all (the baseline), the raw path and the fast path: at the tripwire port (blocked
//    after its first packet) and at a port that is no tripwire (ordinary traffic, which
//    the fast path's rules now inspect).
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TARGET_V4, type TestNet } from '../support/netns.js';
import { SentryProcess } from '../support/sentry-process.js';
import { progress, type Figure } from './harness.js';
import { ksoftirqds } from './proc.js';

const TICKS_PER_SECOND = 100;
const TRAIN = fileURLToPath(new URL('./probe-train.js', import.meta.url));

function cpuOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
  } catch {
    return 0;
  }
}

const policy = (fast: boolean) => `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: bench-fast-path}
spec:
  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [1]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, maxBlocksPerMinute: 100000, kernelFastPath: ${fast}}
`;

async function startSentry(net: TestNet, fast: boolean): Promise<SentryProcess> {
  const file = `/tmp/kps-bench-fastpath-${fast}.yaml`;
  writeFileSync(file, policy(fast));
  return SentryProcess.start(net, { args: ['--policy', file, '--log-level', 'info'] }, ['--flush-on-exit']);
}

/** The drop counters of the blocked set's rule and of the fast path's trap (0 without one). */
async function counters(net: TestNet): Promise<{ blocked: number; trapped: number }> {
  const { stdout } = await net.exec(net.target, ['nft', 'list', 'table', 'inet', 'kube_portsentry']);
  return {
    blocked: Number(/ip saddr @blocked4 counter packets (\d+)/.exec(stdout)?.[1] ?? NaN),
    trapped: Number(/prefix "kube-portsentry: blocked" group \d+ counter packets (\d+)/.exec(stdout)?.[1] ?? 0),
  };
}

interface Trains {
  /** Per train: follow-ups that got through before the block. */
  through: number[];
  /** Trains whose probe itself was dropped. */
  probesDropped: number;
  /** Probe to block, ms, as the sentry measured it (raw path). */
  latencies: number[];
}

async function trains(net: TestNet, fast: boolean, trials: number, count: number): Promise<Trains> {
  const sentry = await startSentry(net, fast);
  const out: Trains = { through: [], probesDropped: 0, latencies: [] };
  try {
    for (let i = 0; i < trials; i++) {
      const source = `198.18.${fast ? 3 : 2}.${i + 1}`;
      const before = await counters(net);
      await net.exec(net.scanner, [process.execPath, TRAIN, '--source', source, '--target', TARGET_V4, '--count', String(count)]);
      await new Promise((r) => setTimeout(r, 30));
      const after = await counters(net);
      out.through.push(count - (after.blocked - before.blocked));
      out.probesDropped += after.trapped - before.trapped;
    }
  } finally {
    await sentry.stop();
  }
  out.latencies = sentry.lines.filter((l) => l.msg === 'response in place' && !l.blockedInKernel).map((l) => Number(l.latencyMs));
  return out;
}

export interface FloodCpu {
  sent: number;
  totalUs: number;
  sentryUs: number;
}

/** An hping3 flood at `port` for `seconds`; CPU per packet sent, all of it and the sentry's. */
export async function floodCpu(net: TestNet, port: number, seconds: number, sentry: SentryProcess | null): Promise<FloodCpu> {
  const soft = ksoftirqds();
  const sentryPid = sentry?.child.pid;
  const hping = net.spawn(net.scanner, ['hping3', '--flood', '-q', '-S', '-p', String(port), TARGET_V4]);
  let stderr = '';
  hping.stderr!.on('data', (d) => (stderr += d));
  hping.stdout!.on('data', (d) => (stderr += d));
  await new Promise((r) => setTimeout(r, 300)); // past start-up (and the block, at the tripwire)
  const cpu = () => cpuOf(hping.pid!) + soft.reduce((s, p) => s + cpuOf(p), 0) + (sentryPid ? cpuOf(sentryPid) : 0);
  const total0 = cpu();
  const sentry0 = sentryPid ? cpuOf(sentryPid) : 0;
  const stats0 = stderr.length;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const total1 = cpu();
  const sentry1 = sentryPid ? cpuOf(sentryPid) : 0;
  hping.kill('SIGINT');
  await new Promise((r) => hping.once('close', r));
  // hping3 counts from its start: scale the 300 ms warm-up out by time share.
  const sent = Number(/(\d+) packets transmitted/.exec(stderr.slice(stats0))?.[1] ?? NaN) * (seconds / (seconds + 0.3));
  return { sent, totalUs: ((total1 - total0) / sent) * 1e6, sentryUs: ((sentry1 - sentry0) / sent) * 1e6 };
}

const quantile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

export async function fastPathFigures(net: TestNet, seconds: number, trials: number): Promise<Figure[]> {
  const figures: Figure[] = [];
  const count = 400;
  const results = {} as Record<'raw' | 'kernel', Trains>;
  for (const path of ['raw', 'kernel'] as const) {
    progress(`fast path: ${trials} probe trains (a tripwire SYN, then ${count} SYNs elsewhere), ${path} path`);
    results[path] = await trains(net, path === 'kernel', trials, count);
  }
  const sorted = (v: number[]) => [...v].sort((a, b) => a - b);
  for (const [q, label] of [[0.5, 'p50'], [0.99, 'p99']] as const) {
    figures.push(
      {
        id: `fastpath.block-time.raw.${label}`,
        name: `probe to block, raw path (kernel stamp to netlink ack), ${label}`,
        value: quantile(sorted(results.raw.latencies), q),
        unit: 'ms',
        extra: { samples: results.raw.latencies.length },
      },
      {
        id: `fastpath.through.raw.${label}`,
        name: `SYNs through after the probe (of ${count} back to back), raw path, ${label}`,
        value: quantile(sorted(results.raw.through), q),
        unit: 'packets',
      },
      {
        id: `fastpath.through.kernel.${label}`,
        name: `SYNs through after the probe (of ${count} back to back), kernel path, ${label}`,
        value: quantile(sorted(results.kernel.through), q),
        unit: 'packets',
      },
    );
  }
  figures.push(
    { id: 'fastpath.probe-dropped.raw', name: 'probes dropped themselves, raw path', value: results.raw.probesDropped, unit: 'trains', extra: { of: trials } },
    {
      id: 'fastpath.probe-dropped.kernel',
      name: 'probes dropped themselves (blocked at the first packet), kernel path',
      value: results.kernel.probesDropped,
      unit: 'trains',
      extra: { of: trials },
    },
  );

  for (const [port, what] of [
    [1, 'at the tripwire port (blocked after its first packet)'],
    [2, 'at a port that is no tripwire'],
  ] as const) {
    progress(`fast path: ${seconds} s hping3 --flood ${what}, no sentry`);
    const base = await floodCpu(net, port, seconds, null);
    const runs: Record<'raw' | 'kernel', FloodCpu> = {} as Record<'raw' | 'kernel', FloodCpu>;
    for (const path of ['raw', 'kernel'] as const) {
      progress(`fast path: ${seconds} s hping3 --flood ${what}, ${path} path`);
      const sentry = await startSentry(net, path === 'kernel');
      try {
        runs[path] = await floodCpu(net, port, seconds, sentry);
      } finally {
        await sentry.stop();
      }
    }
    const id = `fastpath.flood${port}`;
    figures.push({ id: `${id}.none.total`, name: `flood ${what}: CPU per packet, all, no sentry`, value: base.totalUs, unit: 'us', extra: { sent: base.sent } });
    for (const path of ['raw', 'kernel'] as const)
      figures.push(
        {
          id: `${id}.${path}.total`,
          name: `flood ${what}: CPU per packet, all, ${path} path`,
          value: runs[path].totalUs,
          unit: 'us',
          baseline: 'no sentry',
          baselineId: `${id}.none.total`,
          ratio: runs[path].totalUs / base.totalUs,
          extra: { sent: runs[path].sent },
        },
        { id: `${id}.${path}.sentry`, name: `flood ${what}: CPU per packet, sentry process, ${path} path`, value: runs[path].sentryUs, unit: 'us' },
      );
  }
  return figures;
}
