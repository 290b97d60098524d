// Debian's real portsentry 1.2 against our sentry, in the same run and under the same
// `hping3 --flood` SYN load (bench/detector.ts --part portsentry): its -stcp against our
// stealth mode, its -atcp against our advanced mode, both watching the same ports and both
// alert-only (portsentry BLOCK_TCP="0", ours response.tcp alert with no firewall), so
// neither stops seeing the flood once it has reported the source.
//
// portsentry reads /etc/portsentry/portsentry.conf (a compiled-in path) and logs through
// syslog(3) to /dev/log. It runs chrooted in a temp dir holding its binary, the libraries
// ldd names, our config (every file it writes points into the dir) and, as /dev/log, a
// dummy syslog socket that only counts: the flood makes it log a line or two per packet,
// which reach no journal and are never stored, while its send() costs what it costs with a
// real syslog daemon. The "scan from host" lines it logs, one per packet it read, are its
// packets read. It daemonizes: its pid is the `portsentry` process in the namespace.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runProgram } from '../src/respond/run-program.js';
import { debianPortsentry } from '../support/debian-portsentry.js';
import type { TestNet } from '../support/netns.js';
import { SentryProcess } from '../support/sentry-process.js';
import { progress, type Figure } from './harness.js';
import { cpuSeconds, flood, memory, rawDrops, sentryMetric } from './proc.js';

/** The ports both watch: the flood hits port 1, a tripwire either way. */
export interface Watched {
  ports: number[];
  advancedLimit: number;
  exclude: number[];
}

export const WATCHED: Watched = { ports: [1, 11, 15, 79, 111], advancedLimit: 1024, exclude: [113, 139] };

/** portsentry.conf: alert only, files under /state of the chroot. */
export function portsentryConf(w: Watched): string {
  return [
    `TCP_PORTS="${w.ports.join(',')}"`,
    `UDP_PORTS="${w.ports.join(',')}"`,
    `ADVANCED_PORTS_TCP="${w.advancedLimit}"`,
    `ADVANCED_PORTS_UDP="${w.advancedLimit}"`,
    `ADVANCED_EXCLUDE_TCP="${w.exclude.join(',')}"`,
    `ADVANCED_EXCLUDE_UDP="${w.exclude.join(',')}"`,
    'IGNORE_FILE="/state/portsentry.ignore"',
    'HISTORY_FILE="/state/portsentry.history"',
    'BLOCKED_FILE="/state/portsentry.blocked"',
    'RESOLVE_HOST="0"',
    'BLOCK_UDP="0"',
    'BLOCK_TCP="0"',
    'SCAN_TRIGGER="0"',
    '',
  ].join('\n');
}

/** The same watch and response as a policy of ours. */
export function ourPolicy(w: Watched, mode: 'stealth' | 'advanced'): string {
  return `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: bench-portsentry}
spec:
  files: {history: "", blocked: ""}
  tcp: {mode: ${mode}, ports: [${w.ports.join(', ')}], advancedLimit: ${w.advancedLimit}, exclude: [${w.exclude.join(', ')}]}
  udp: {mode: "off"}
  response: {tcp: alert, firewall: none}
`;
}

/** A chroot for portsentry: its binary, the libraries ldd lists, the config, /state, /dev. */
async function makeChroot(root: string, w: Watched): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-bench-portsentry-'));
  const binary = join(root, 'usr/sbin/portsentry');
  const { stdout } = await runProgram(['ldd', binary]);
  const libraries = [...stdout.matchAll(/(\/\S+)/g)].map((m) => m[1]!);
  if (!libraries.some((l) => l.includes('libc.so'))) throw new Error(`ldd ${binary} lists no libc:\n${stdout}`);
  for (const file of [...libraries, '/usr/sbin/portsentry']) {
    await mkdir(join(dir, dirname(file)), { recursive: true });
    await copyFile(file === '/usr/sbin/portsentry' ? binary : file, join(dir, file)); // follows symlinks
  }
  for (const sub of ['etc/portsentry', 'state', 'dev']) await mkdir(join(dir, sub), { recursive: true });
  await writeFile(join(dir, 'etc/portsentry/portsentry.conf'), portsentryConf(w));
  await writeFile(join(dir, 'state/portsentry.ignore'), '');
  return dir;
}

// A datagram socket at the chroot's /dev/log: counts messages and "scan from host" lines,
// prints start-up lines (adminalert) as they come and the counts on SIGTERM. Python,
// because Node has no Unix datagram sockets.
const DUMMY_SYSLOG = `
import os, signal, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(sys.argv[1])
counts = {'messages': 0, 'scans': 0}
def done(*_):
    print('counts', counts['messages'], counts['scans'], flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, done)
print('up', flush=True)
buf = bytearray(4096)
while True:
    line = buf[:s.recv_into(buf)]
    counts['messages'] += 1
    if b'scan from host' in line:
        counts['scans'] += 1
    elif b'adminalert' in line:
        print('admin', bytes(line).decode(errors='replace').strip(), flush=True)
`;

class DummySyslog {
  private out = '';
  private constructor(private readonly child: ChildProcess) {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.out += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (this.out += d));
  }

  static async start(path: string): Promise<DummySyslog> {
    const log = new DummySyslog(spawn('python3', ['-c', DUMMY_SYSLOG, path], { stdio: ['ignore', 'pipe', 'pipe'] }));
    await log.waitFor(/^up$/m, 5000);
    return log;
  }

  /** Waits for a line matching `re`; fails with what was logged when an error comes first. */
  async waitFor(re: RegExp, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!re.test(this.out)) {
      if (/ERROR|Traceback/.test(this.out) || this.child.exitCode !== null || Date.now() > deadline)
        throw new Error(`dummy syslog: no ${re} within ${timeoutMs} ms; got:\n${this.out}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Stops the reader (once): messages and "scan from host" lines received. */
  async stop(): Promise<{ messages: number; scans: number }> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      const closed = new Promise((r) => this.child.once('close', r));
      this.child.kill('SIGTERM');
      await closed;
    }
    const m = /^counts (\d+) (\d+)$/m.exec(this.out);
    if (!m) throw new Error(`dummy syslog gave no counts:\n${this.out}`);
    return { messages: Number(m[1]), scans: Number(m[2]) };
  }
}

async function gone(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.startsWith('Z');
  } catch {
    return true;
  }
}

interface Run {
  /** hping3's own count of packets sent. */
  sent: number;
  read: number;
  drops: number;
  /** CPU seconds of the detector process during the flood. */
  cpu: number;
  seconds: number;
  /** VmRSS before the flood, VmHWM after it, the highest VmRSS sampled during it (bytes). */
  rssBefore: number;
  peak: number;
  rssDuringFlood: number;
  /** Syslog messages per packet read (portsentry only). */
  syslogPerPacket?: number;
}

/** The flood against process `pid`, with CPU, drops and memory around it. */
async function measured(net: TestNet, pid: number, seconds: number): Promise<Omit<Run, 'read'>> {
  const drops0 = await rawDrops(net);
  const cpu0 = cpuSeconds(pid);
  const rssBefore = memory(pid).rss;
  let rssDuringFlood = rssBefore;
  const t0 = performance.now();
  const sent = await flood(net, seconds, { during: () => (rssDuringFlood = Math.max(rssDuringFlood, memory(pid).rss)) });
  const elapsed = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - cpu0;
  const drops = (await rawDrops(net)) - drops0;
  return { sent, drops, cpu, seconds: elapsed, rssBefore, peak: memory(pid).peak, rssDuringFlood };
}

/** Debian's portsentry running chrooted in the target namespace; stop() gives its syslog counts. */
export interface PortsentryProcess {
  pid: number;
  stop(): Promise<{ messages: number; scans: number }>;
}

export async function startPortsentry(net: TestNet, root: string, flag: '-stcp' | '-atcp'): Promise<PortsentryProcess> {
  const dir = await makeChroot(root, WATCHED);
  const syslog = await DummySyslog.start(join(dir, 'dev/log'));
  let pid: number | undefined;
  const stop = async (): Promise<{ messages: number; scans: number }> => {
    try {
      if (pid !== undefined) {
        process.kill(pid, 'SIGTERM');
        for (let i = 0; !(await gone(pid)); i++) {
          if (i > 250) {
            process.kill(pid, 'SIGKILL');
            throw new Error(`portsentry (pid ${pid}) still running 5 s after SIGTERM`);
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      return await syslog.stop();
    } finally {
      await syslog.stop().catch(() => undefined); // after a failure: only ends the reader
      await rm(dir, { recursive: true, force: true });
    }
  };
  try {
    // The parent exits once the daemon is forked; the daemon says when it listens.
    await net.exec(net.target, ['chroot', dir, '/usr/sbin/portsentry', flag]);
    await syslog.waitFor(/PortSentry is now active and listening/, 10_000);
    const { stdout } = await runProgram(['ip', 'netns', 'pids', net.target]);
    const pids: number[] = [];
    for (const p of stdout.split('\n').filter(Boolean).map(Number))
      if ((await readFile(`/proc/${p}/comm`, 'utf8').catch(() => '')).trim() === 'portsentry') pids.push(p);
    if (pids.length !== 1) throw new Error(`expected one portsentry process in ${net.target}, found ${pids.length}`);
    pid = pids[0]!;
  } catch (err) {
    await stop().catch(() => undefined);
    throw err;
  }
  return { pid, stop };
}

async function portsentryRun(net: TestNet, root: string, flag: '-stcp' | '-atcp', seconds: number): Promise<Run> {
  const portsentry = await startPortsentry(net, root, flag);
  let counts: { messages: number; scans: number } | undefined;
  try {
    const run = await measured(net, portsentry.pid, seconds);
    counts = await portsentry.stop();
    return { ...run, read: counts.scans, syslogPerPacket: counts.messages / Math.max(1, counts.scans) };
  } finally {
    if (!counts) await portsentry.stop().catch(() => undefined);
  }
}

async function ourRun(net: TestNet, mode: 'stealth' | 'advanced', seconds: number): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-bench-ours-'));
  const file = join(dir, 'policy.yaml');
  await writeFile(file, ourPolicy(WATCHED, mode));
  const sentry = await SentryProcess.start(net, { args: ['--policy', file, '--metrics-address', '127.0.0.1:9109'] }, ['--flush-on-exit']);
  try {
    const packets0 = await sentryMetric(net, 'portsentry_packets_inspected_total');
    const run = await measured(net, sentry.child.pid!, seconds);
    await new Promise((r) => setTimeout(r, 1100)); // one housekeeping pass publishes the counters
    return { ...run, read: (await sentryMetric(net, 'portsentry_packets_inspected_total')) - packets0 };
  } finally {
    await sentry.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

const MIB = 1024 * 1024;

function pairFigures(theirs: Run, ours: Run, flag: string, mode: string): Figure[] {
  const figures: Figure[] = [];
  const perMillion = (r: Run) => (r.cpu / Math.max(1, r.read)) * 1e6;
  const rows: [string, string, (r: Run) => number, string][] = [
    ['sent', 'flood sent (hping3)', (r) => r.sent / r.seconds, 'packets/s'],
    ['offered', 'offered to the socket (read + dropped)', (r) => (r.read + r.drops) / r.seconds, 'packets/s'],
    ['read', 'packets read', (r) => r.read / r.seconds, 'packets/s'],
    ['drops', 'socket drops (kernel)', (r) => r.drops, 'packets'],
    ['drop-share', 'share dropped', (r) => r.drops / Math.max(1, r.read + r.drops), 'fraction'],
    ['cpu-per-million', 'CPU seconds per million packets read (= us per packet)', (r) => perMillion(r), 's'],
    ['rss-peak', 'peak RSS (VmHWM)', (r) => r.peak / MIB, 'MiB'],
  ];
  const theirName = `Debian portsentry ${flag}`;
  for (const [key, name, value, unit] of rows) {
    const theirId = `portsentry${flag}.${key}`;
    const base = value(theirs);
    figures.push({ id: theirId, name: `${theirName}: ${name}`, value: base, unit });
    const v = value(ours);
    figures.push({
      id: `portsentry.${mode}.${key}`,
      name: `sentry ${mode}: ${name}`,
      value: v,
      unit,
      ...(base !== 0 ? { baseline: theirName, baselineId: theirId, ratio: v / base } : {}),
    });
  }
  figures.push(
    { id: `portsentry${flag}.syslog-per-packet`, name: `${theirName}: syslog messages per packet read`, value: theirs.syslogPerPacket ?? NaN, unit: 'messages' },
    { id: `portsentry.${mode}.rss-before`, name: `sentry ${mode}: RSS before the flood`, value: ours.rssBefore / MIB, unit: 'MiB' },
    { id: `portsentry.${mode}.rss-flood`, name: `sentry ${mode}: highest RSS sampled during the flood`, value: ours.rssDuringFlood / MIB, unit: 'MiB' },
  );
  return figures;
}

export async function portsentryFigures(net: TestNet, seconds: number): Promise<Figure[]> {
  const got = await debianPortsentry();
  if ('skip' in got) throw new Error(got.skip);
  const figures: Figure[] = [];
  for (const [flag, mode] of [
    ['-stcp', 'stealth'],
    ['-atcp', 'advanced'],
  ] as const) {
    progress(`Debian portsentry ${flag}, alert only, ${seconds} s of hping3 --flood`);
    const theirs = await portsentryRun(net, got.root, flag, seconds);
    progress(`sentry ${mode} mode, alert only, ${seconds} s of hping3 --flood`);
    const ours = await ourRun(net, mode, seconds);
    figures.push(...pairFigures(theirs, ours, flag, mode));
  }
  return figures;
}
