// What the detector benchmarks read about a process and a namespace while a flood runs:
// CPU seconds and memory from /proc, the drop counters of raw sockets, and the hping3
// SYN flood itself.
import { readdirSync, readFileSync } from 'node:fs';
import { TARGET_V4, type TestNet } from '../support/netns.js';

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** CPU seconds used by a process so far: user, system (kernel work charged to it). */
export function cpuTimes(pid: number): { user: number; system: number } {
  // Fields after the command name: utime is the 12th, stime the 13th.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(fields[11]) / TICKS_PER_SECOND, system: Number(fields[12]) / TICKS_PER_SECOND };
}

export function cpuSeconds(pid: number): number {
  const t = cpuTimes(pid);
  return t.user + t.system;
}

/** Resident memory of a process now (VmRSS) and at its peak so far (VmHWM), in bytes. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string): number => {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status);
    if (!m) throw new Error(`/proc/${pid}/status has no ${field}`);
    return Number(m[1]) * 1024;
  };
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}

/** Sum of the drops column of raw sockets in a namespace (IPv4 and IPv6). */
export async function rawDrops(net: TestNet): Promise<number> {
  const { stdout } = await net.exec(net.target, ['cat', '/proc/net/raw', '/proc/net/raw6']);
  return stdout
    .split('\n')
    .filter((line) => /^\s*\d+:/.test(line))
    .reduce((sum, line) => sum + Number(line.trim().split(/\s+/).at(-1)), 0);
}

/** A sentry's metric (port 9109 in the target namespace), summed over its labels; 0 when absent. */
export async function sentryMetric(net: TestNet, name: string): Promise<number> {
  const script = "fetch('http://127.0.0.1:9109/metrics').then(r => r.text()).then(t => process.stdout.write(t))";
  const { stdout } = await net.exec(net.target, [process.execPath, '-e', script]);
  return stdout
    .split('\n')
    .filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`))
    .reduce((sum, l) => sum + Number(l.split(' ').at(-1)), 0);
}

/** The kernel's softirq threads: receive work they take over is charged to them, not to the sender. */
export const ksoftirqds = (): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('ksoftirqd/');
      } catch {
        return false;
      }
    });

/**
 * hping3 SYNs to `port` for `seconds`: as fast as it can (--flood), or one every
 * `intervalUs`; `during` runs every 200 ms meanwhile. Returns how many hping3 sent.
 */
export async function flood(net: TestNet, seconds: number, options: { intervalUs?: number; port?: number; during?: () => void } = {}): Promise<number> {
  const rate = options.intervalUs ? ['-i', `u${options.intervalUs}`] : ['--flood'];
  const hping = net.spawn(net.scanner, ['hping3', ...rate, '-q', '-S', '-p', String(options.port ?? 1), TARGET_V4]);
  let out = '';
  hping.stdout!.on('data', (d) => (out += d));
  hping.stderr!.on('data', (d) => (out += d));
  const sampler = options.during ? setInterval(options.during, 200) : undefined;
  await new Promise((r) => setTimeout(r, seconds * 1000));
  clearInterval(sampler);
  hping.kill('SIGINT');
  await new Promise((r) => hping.once('close', r));
  await new Promise((r) => setTimeout(r, 300)); // let the reader drain its queue
  return Number(/(\d+) packets transmitted/.exec(out)?.[1] ?? NaN);
}
