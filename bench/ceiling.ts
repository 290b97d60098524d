// The zero-drop ceiling (bench/detector.ts --part ceiling): the highest rate the C sender
// (bench/flood.c) can offer that a receiver takes with nothing lost, for (1) the sentry's
// stealth reader (raw path), (2) the kernel fast path and (3) Debian's portsentry 1.2
// -stcp, all under the same load: SYN, FIN, NULL and XMAS in turn to tripwire port 1 from
// `sources` addresses in turn. The raw path and portsentry are alert-only (nothing stops
// the flood reaching them); the fast path blocks, as it only can.
//
// Each step is one fresh receiver and `seconds` of load at one rate. A rate passes when
// the sender offered at least 97% of it and nothing was lost:
//  - the link: the veth pair's drops (the target's backlog was full);
//  - raw path and portsentry: the raw sockets' drops (/proc/net/raw, raw6), and packets
//    offered but never read (the sentry's packets-inspected counter, portsentry's "scan
//    from host" syslog lines, one per packet);
//  - fast path: packets offered that none of its rules accounted for (the blocked set's
//    drop counter, the trap's, its refusals'), and traps the sentry never heard of
//    (its probes counter against the trap's counter: nflog losses).
// The search doubles from `startRate` until a step fails (or the sender cannot offer
// more), then bisects between the last pass and the first failure. At the ceiling: CPU
// per packet of the receiver process (utime + stime from /proc over packets offered), and
// of the sender with ksoftirqd, which carry the target's receive path (the veth hands a
// packet to the target's stack on the sending CPU).
// Baselines, in the same run, with no receiver: hping3 --flood's top rate and the sender's.
// The sender is pinned to CPU 0 and the receiver to CPU 1 (taskset), on a 2-core machine.
import { writeFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { runProgram } from '../src/respond/run-program.js';
import { debianPortsentry } from '../support/debian-portsentry.js';
import type { TestNet } from '../support/netns.js';
import { SentryProcess } from '../support/sentry-process.js';
import { flood as cSender, link, type FloodResult } from './flood-sender.js';
import { progress, type Figure } from './harness.js';
import { ourPolicy, startPortsentry, WATCHED } from './portsentry.js';
import { cpuSeconds, flood as hping3Flood, ksoftirqds, rawDrops, sentryMetric } from './proc.js';

const SENDER_CPU = 0;
const RECEIVER_CPU = 1;
const FLAGS = 'syn,fin,null,xmas';

export interface CeilingOptions {
  seconds: number;
  startRate: number;
  /** Bisection steps after the doubling. */
  steps: number;
  sources: number;
  /** Pin the sender to CPU 0 and the receiver to CPU 1. */
  pin: boolean;
}

/** A receiver started for one step: its pid, and what it took in once the step is over. */
export interface Receiver {
  pid: number;
  /** Before the load. */
  mark(): Promise<void>;
  /** After the load: packets lost, read (or trapped and reported), and the details. */
  lost(sent: number): Promise<{ lost: number; read: number; detail: Record<string, number> }>;
  stop(): Promise<void>;
}

type Kind = 'raw' | 'fastpath' | 'portsentry';

const NAMES: Record<Kind, string> = {
  raw: 'sentry stealth reader (raw path, alert only)',
  fastpath: 'kernel fast path (block)',
  portsentry: 'Debian portsentry -stcp (alert only)',
};

async function tmpPolicy(text: string): Promise<string> {
  const file = join('/tmp', `kps-bench-ceiling-${process.pid}.yaml`);
  await writeFile(file, text);
  return file;
}

const drain = () => new Promise((r) => setTimeout(r, 300)); // the reader empties its queue
const housekeeping = () => new Promise((r) => setTimeout(r, 1100)); // the sentry publishes its counters

export async function rawReceiver(net: TestNet): Promise<Receiver> {
  const file = await tmpPolicy(ourPolicy(WATCHED, 'stealth'));
  const sentry = await SentryProcess.start(net, { args: ['--policy', file, '--metrics-address', '127.0.0.1:9109'] }, ['--flush-on-exit']);
  let drops0 = 0;
  let read0 = 0;
  return {
    pid: sentry.child.pid!,
    async mark() {
      drops0 = await rawDrops(net);
      read0 = await sentryMetric(net, 'portsentry_packets_inspected_total');
    },
    async lost(sent) {
      await drain();
      await housekeeping();
      const socket = (await rawDrops(net)) - drops0;
      const read = (await sentryMetric(net, 'portsentry_packets_inspected_total')) - read0;
      return { lost: Math.max(socket, sent - read), read, detail: { socketDrops: socket, unread: sent - read } };
    },
    async stop() {
      await sentry.stop();
    },
  };
}

const fastPathPolicy = `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: bench-ceiling}
spec:
  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [${WATCHED.ports.join(', ')}]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, maxBlocksPerMinute: 100000, kernelFastPath: true}
`;

/** The fast path's counters: the blocked set's drops, traps (blocked and logged), refusals, forged. */
async function fastPathCounters(net: TestNet): Promise<{ blocked: number; trapped: number; refused: number; spoofed: number }> {
  const { stdout } = await net.exec(net.target, ['nft', 'list', 'table', 'inet', 'kube_portsentry']);
  const chain = (name: string) => new RegExp(`chain ${name} \\{([\\s\\S]*?)\\n\\t\\}`).exec(stdout)?.[1] ?? '';
  const sum = (text: string) => [...text.matchAll(/counter packets (\d+)/g)].reduce((s, m) => s + Number(m[1]), 0);
  return {
    blocked: Number(/ip saddr @blocked4 counter packets (\d+)/.exec(stdout)?.[1] ?? NaN),
    trapped: sum(chain('trap_block')),
    refused: sum(chain('trap')) + sum(chain('trap_refused')),
    spoofed: sum(chain('trap_spoofed')),
  };
}

async function fastPathReceiver(net: TestNet): Promise<Receiver> {
  const file = await tmpPolicy(fastPathPolicy);
  const sentry = await SentryProcess.start(net, { args: ['--policy', file, '--metrics-address', '127.0.0.1:9109'] }, ['--flush-on-exit']);
  // The tripwire ports come with the first synchronisation, after start.
  for (let i = 0; !/elements = /.test((await net.exec(net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', 'tripwire_tcp'])).stdout); i++) {
    if (i > 100) throw new Error('the fast path trapped no port 5 s after start');
    await new Promise((r) => setTimeout(r, 50));
  }
  let before = { blocked: 0, trapped: 0, refused: 0, spoofed: 0 };
  let reported0 = 0;
  return {
    pid: sentry.child.pid!,
    async mark() {
      before = await fastPathCounters(net);
      reported0 = await sentryMetric(net, 'portsentry_probes_total');
    },
    async lost(sent) {
      await drain();
      await housekeeping();
      const after = await fastPathCounters(net);
      const d = (k: keyof typeof after) => after[k] - before[k];
      const accounted = d('blocked') + d('trapped') + d('refused') + d('spoofed');
      const reported = (await sentryMetric(net, 'portsentry_probes_total')) - reported0;
      const lossWarnings = sentry.lines.filter((l) => /log messages lost/.test(l.msg)).length;
      const unreported = d('trapped') - reported;
      return {
        lost: Math.max(0, sent - accounted) + Math.max(0, unreported) + lossWarnings,
        read: accounted,
        detail: { blockedSetDrops: d('blocked'), trapped: d('trapped'), refused: d('refused'), reported, unaccounted: sent - accounted, nflogLossWarnings: lossWarnings },
      };
    },
    async stop() {
      await sentry.stop();
    },
  };
}

async function portsentryReceiver(net: TestNet, root: string): Promise<Receiver> {
  const portsentry = await startPortsentry(net, root, '-stcp');
  let drops0 = 0;
  let counts: { messages: number; scans: number } | undefined;
  return {
    pid: portsentry.pid,
    async mark() {
      drops0 = await rawDrops(net);
    },
    async lost(sent) {
      await drain();
      const socket = (await rawDrops(net)) - drops0;
      counts = await portsentry.stop();
      return { lost: Math.max(socket, sent - counts.scans), read: counts.scans, detail: { socketDrops: socket, unread: sent - counts.scans, syslogMessages: counts.messages } };
    },
    async stop() {
      if (!counts) await portsentry.stop();
    },
  };
}

/** Drops on the veth pair: the scanner end's tx and the target end's rx. */
async function linkDrops(net: TestNet): Promise<number> {
  const { ifname, targetIfname } = await link(net);
  const stats = async (ns: string, dev: string) =>
    (JSON.parse((await runProgram(['ip', '-n', ns, '-s', '-j', 'link', 'show', 'dev', dev])).stdout) as { stats64: { rx: { dropped: number }; tx: { dropped: number } } }[])[0]!.stats64;
  return (await stats(net.scanner, ifname)).tx.dropped + (await stats(net.target, targetIfname)).rx.dropped;
}

function cpuOf(pid: number): number {
  try {
    return cpuSeconds(pid);
  } catch {
    return 0; // gone
  }
}

export interface Step {
  asked: number;
  offered: number;
  sent: number;
  lost: number;
  linkDrops: number;
  read: number;
  /** The sender reached at least 97% of the rate asked. */
  reached: boolean;
  pass: boolean;
  receiverUsPerPacket: number;
  /** The sender with ksoftirqd: the sending side and the target's receive path in the kernel. */
  kernelUsPerPacket: number;
  detail: Record<string, number>;
}

export async function step(net: TestNet, start: () => Promise<Receiver>, rate: number, o: CeilingOptions): Promise<Step> {
  const receiver = await start();
  try {
    if (o.pin) await runProgram(['taskset', '-a', '-p', '-c', String(RECEIVER_CPU), String(receiver.pid)]);
    await receiver.mark();
    const link0 = await linkDrops(net);
    const soft = ksoftirqds();
    const soft0 = soft.reduce((s, p) => s + cpuOf(p), 0);
    const cpu0 = cpuOf(receiver.pid);
    const sent: FloodResult = await cSender(net, { rate, seconds: o.seconds, sources: o.sources, flags: FLAGS, ...(o.pin ? { cpu: SENDER_CPU } : {}) });
    const cpu = cpuOf(receiver.pid) - cpu0;
    const softCpu = soft.reduce((s, p) => s + cpuOf(p), 0) - soft0;
    const got = await receiver.lost(sent.sent);
    const drops = (await linkDrops(net)) - link0;
    const reached = sent.rate >= 0.97 * rate;
    const r: Step = {
      asked: rate,
      offered: sent.rate,
      sent: sent.sent,
      lost: got.lost + drops,
      linkDrops: drops,
      read: got.read,
      reached,
      pass: reached && got.lost + drops === 0,
      receiverUsPerPacket: (cpu / Math.max(1, sent.sent)) * 1e6,
      kernelUsPerPacket: ((sent.cpuUser + sent.cpuSystem + softCpu) / Math.max(1, sent.sent)) * 1e6,
      detail: got.detail,
    };
    progress(
      `ceiling: ${Math.round(rate)}/s asked, ${Math.round(sent.rate)}/s offered, ${r.lost} lost (${JSON.stringify({ link: drops, ...got.detail })}): ${r.pass ? 'pass' : reached ? 'drops' : 'sender short'}`,
    );
    return r;
  } finally {
    await receiver.stop();
  }
}

/**
 * Doubling, then bisection: every step run, and the ceiling: the highest rate offered with
 * nothing lost (a step where the sender fell short of the rate asked counts, at what it offered).
 */
export async function search(net: TestNet, start: () => Promise<Receiver>, senderMax: number, o: CeilingOptions): Promise<{ steps: Step[]; ceiling: Step | null; limitedBy: 'drops' | 'sender' }> {
  const steps: Step[] = [];
  let best: Step | null = null;
  let failed: Step | null = null;
  // The fast path drops early and leaves the sender more of its CPU than a target that
  // answers every probe: it may offer more than its baseline, so the doubling goes past it.
  const cap = 4 * senderMax;
  let rate = o.startRate;
  for (;;) {
    const s = await step(net, start, rate, o);
    steps.push(s);
    if (s.pass) {
      best = s;
      if (failed || rate >= cap) break;
      rate = Math.min(rate * 2, cap);
    } else {
      failed = s;
      if (best || rate < 2000) break;
      rate /= 2;
    }
  }
  if (best && failed) {
    let lo = best.asked;
    let hi = failed.asked;
    for (let i = 0; i < o.steps && hi / lo > 1.05; i++) {
      const mid = Math.round((lo + hi) / 2);
      const s = await step(net, start, mid, o);
      steps.push(s);
      if (s.pass) lo = mid;
      else hi = mid;
    }
  }
  const clean = steps.filter((s) => s.lost === 0).sort((a, b) => b.offered - a.offered);
  const limitedBy = steps.some((s) => s.reached && s.lost > 0) ? 'drops' : 'sender';
  return { steps, ceiling: clean[0] ?? null, limitedBy };
}

/** hping3 --flood and the C sender at full speed, into the target with nothing reading. */
async function baselines(net: TestNet, seconds: number, sources: number, pin: boolean): Promise<{ hping3: number; sender: FloodResult }> {
  progress(`ceiling: baseline, ${seconds} s of hping3 --flood, nothing reading`);
  const t0 = performance.now();
  const hpingSent = await hping3Flood(net, seconds);
  const hping3 = hpingSent / ((performance.now() - t0 - 300) / 1000);
  progress(`ceiling: baseline, ${seconds} s of the C sender as fast as it can, nothing reading`);
  const sender = await cSender(net, { rate: 0, seconds, sources, flags: FLAGS, ...(pin ? { cpu: SENDER_CPU } : {}) });
  return { hping3, sender };
}

export async function ceilingFigures(net: TestNet, o: CeilingOptions): Promise<Figure[]> {
  const got = await debianPortsentry();
  if ('skip' in got) throw new Error(got.skip);
  const load = loadavg()[0]!;
  const base = await baselines(net, o.seconds, o.sources, o.pin);
  const figures: Figure[] = [
    { id: 'ceiling.baseline.hping3', name: 'hping3 --flood, top rate (nothing reading)', value: base.hping3, unit: 'packets/s' },
    {
      id: 'ceiling.baseline.sender',
      name: 'C sender (bench/flood.c), top rate (nothing reading)',
      value: base.sender.rate,
      unit: 'packets/s',
      baseline: 'hping3',
      baselineId: 'ceiling.baseline.hping3',
      ratio: base.sender.rate / base.hping3,
      extra: { loadAverage1m: load, pinned: o.pin },
    },
  ];
  const starts: Record<Kind, () => Promise<Receiver>> = {
    raw: () => rawReceiver(net),
    fastpath: () => fastPathReceiver(net),
    portsentry: () => portsentryReceiver(net, got.root),
  };
  const results = {} as Record<Kind, Awaited<ReturnType<typeof search>>>;
  for (const kind of ['portsentry', 'raw', 'fastpath'] as const) {
    progress(`ceiling: ${NAMES[kind]}, from ${o.startRate}/s, ${o.seconds} s per step`);
    results[kind] = await search(net, starts[kind], base.sender.rate, o);
  }
  const theirs = results.portsentry.ceiling;
  for (const kind of ['portsentry', 'raw', 'fastpath'] as const) {
    const { ceiling, steps, limitedBy } = results[kind];
    const ratio = (value: number | undefined, base: number | undefined) =>
      kind !== 'portsentry' && value !== undefined && base ? { baseline: 'Debian portsentry', ratio: value / base } : {};
    const id = `ceiling.${kind}`;
    const stepsRun = steps.map((s) => `${Math.round(s.asked)}:${s.pass ? 'pass' : s.reached ? 'drops' : 'short'}`).join(' ');
    figures.push(
      {
        id: `${id}.rate`,
        name: `${NAMES[kind]}: zero-drop ceiling (offered)`,
        value: ceiling?.offered ?? 0,
        unit: 'packets/s',
        ...ratio(ceiling?.offered, theirs?.offered),
        ...(kind !== 'portsentry' ? { baselineId: 'ceiling.portsentry.rate' } : {}),
        extra: { limitedBy, steps: stepsRun, read: ceiling?.read ?? 0, sent: ceiling?.sent ?? 0 },
      },
      {
        id: `${id}.cpu`,
        name: `${NAMES[kind]}: receiver CPU per packet at the ceiling`,
        value: ceiling?.receiverUsPerPacket ?? NaN,
        unit: 'us',
        ...ratio(ceiling?.receiverUsPerPacket, theirs?.receiverUsPerPacket),
        ...(kind !== 'portsentry' ? { baselineId: 'ceiling.portsentry.cpu' } : {}),
      },
      {
        id: `${id}.kernel-cpu`,
        name: `${NAMES[kind]}: sender + ksoftirqd CPU per packet at the ceiling`,
        value: ceiling?.kernelUsPerPacket ?? NaN,
        unit: 'us',
      },
      { id: `${id}.drops`, name: `${NAMES[kind]}: packets lost at the ceiling`, value: ceiling?.lost ?? NaN, unit: 'packets', extra: { ...(ceiling?.detail ?? {}), linkDrops: ceiling?.linkDrops ?? 0 } },
    );
    const over = steps.filter((s) => !s.pass && s.reached).sort((a, b) => a.asked - b.asked)[0];
    if (over)
      figures.push({
        id: `${id}.over`,
        name: `${NAMES[kind]}: lost in the first failing step`,
        value: over.lost,
        unit: 'packets',
        extra: { asked: over.asked, offered: over.offered, sent: over.sent, linkDrops: over.linkDrops, receiverUsPerPacket: over.receiverUsPerPacket, ...over.detail },
      });
  }
  return figures;
}
