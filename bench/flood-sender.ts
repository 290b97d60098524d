// The C packet sender (bench/flood.c) from the benchmarks and tests: built with gcc once
// per version of its source (cached outside the repo, keyed by the source's hash), run in
// a test's scanner namespace, sending to the target's end of the veth pair.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram } from '../src/respond/run-program.js';
import { SCANNER_V4, TARGET_V4, type TestNet } from '../support/netns.js';

/** The source next to the compiled bench/*.js (dist/bench/flood.c is not copied: read the checkout's). */
const SOURCE = fileURLToPath(new URL('../../bench/flood.c', import.meta.url));

/** Builds bench/flood.c if this version of it is not built yet; returns the binary's path. */
export async function floodBinary(): Promise<string> {
  const source = readFileSync(SOURCE);
  const hash = createHash('sha256').update(source).digest('hex').slice(0, 16);
  const dir = join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'kube-portsentry', 'flood', hash);
  const binary = join(dir, 'flood');
  if (existsSync(binary)) return binary;
  mkdirSync(dir, { recursive: true });
  const partial = `${binary}.${process.pid}`;
  await runProgram(['gcc', '-O2', '-Wall', '-Wextra', '-Werror', '-o', partial, SOURCE]);
  renameSync(partial, binary); // whole or absent, when two runs build at once
  return binary;
}

export interface FloodOptions {
  /** Packets per second; 0: as fast as it can. */
  rate: number;
  seconds: number;
  /** Stop after this many packets (0: none). */
  count?: number;
  port?: number;
  /** First source address and how many in turn from there. */
  srcBase?: string;
  sources?: number;
  /** Comma list of syn, fin, null, xmas, sent in turn. */
  flags?: string;
  /** The CPU to pin it to (taskset), if any. */
  cpu?: number;
}

export interface FloodResult {
  /** Packets handed to the device. */
  sent: number;
  seconds: number;
  rate: number;
  asked: number;
  /** sendmmsg calls that failed (ENOBUFS, EAGAIN). */
  errors: number;
  sources: number;
  cpuUser: number;
  cpuSystem: number;
}

/** The scanner's end of the veth pair and the target end's MAC address. */
export async function link(net: TestNet): Promise<{ ifname: string; dstMac: string; targetIfname: string }> {
  const devWith = async (ns: string, address: string): Promise<string> => {
    const { stdout } = await runProgram(['ip', '-n', ns, '-o', '-4', 'addr', 'show']);
    const dev = new RegExp(`^\\d+: (\\S+)\\s+inet ${address.replaceAll('.', '\\.')}/`, 'm').exec(stdout)?.[1];
    if (!dev) throw new Error(`no device with ${address} in ${ns}`);
    return dev;
  };
  const ifname = await devWith(net.scanner, SCANNER_V4);
  const targetIfname = await devWith(net.target, TARGET_V4);
  const { stdout } = await runProgram(['ip', '-n', net.target, '-j', 'link', 'show', 'dev', targetIfname]);
  const dstMac = (JSON.parse(stdout) as { address: string }[])[0]!.address;
  return { ifname, dstMac, targetIfname };
}

/** Runs the sender in the scanner namespace until it is done; its JSON line. */
export async function flood(net: TestNet, options: FloodOptions): Promise<FloodResult> {
  const binary = await floodBinary();
  const { ifname, dstMac } = await link(net);
  const argv = [
    binary,
    '--ifname', ifname,
    '--dst-mac', dstMac,
    '--dst', TARGET_V4,
    '--port', String(options.port ?? 1),
    '--src-base', options.srcBase ?? '198.18.1.1',
    '--sources', String(options.sources ?? 1),
    '--flags', options.flags ?? 'syn,fin,null,xmas',
    '--rate', String(options.rate),
    '--seconds', String(options.seconds),
    '--count', String(options.count ?? 0),
  ];
  const pinned = options.cpu === undefined ? argv : ['taskset', '-c', String(options.cpu), ...argv];
  const { stdout } = await net.exec(net.scanner, pinned, { timeoutMs: (options.seconds + 30) * 1000 });
  return JSON.parse(stdout) as FloodResult;
}
