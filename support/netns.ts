// Test hosts: a scanner and a target network namespace joined by a veth pair, with
// addresses of their own (198.18.0.0/24 and 2001:db8::/64, reserved for tests and
// documentation). All test traffic stays inside these namespaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { runProgram } from '../src/respond/run-program.js';

let counter = 0;

export const SCANNER_V4 = '198.18.0.1';
export const TARGET_V4 = '198.18.0.2';
export const SCANNER_V6 = '2001:db8::1';
export const TARGET_V6 = '2001:db8::2';
/** The target's default gateway: an address on the link that nothing answers for. */
export const GATEWAY_NOWHERE_V4 = '198.18.0.254';
export const GATEWAY_NOWHERE_V6 = '2001:db8::fe';

export class TestNet {
  private constructor(
    readonly scanner: string,
    readonly target: string,
  ) {}

  static async create(): Promise<TestNet> {
    const id = `kps${process.pid % 100000}x${counter++}`;
    const net = new TestNet(`${id}-s`, `${id}-t`);
    const ip = (...args: string[]) => runProgram(['ip', ...args]);
    try {
      await ip('netns', 'add', net.scanner);
      await ip('netns', 'add', net.target);
      await ip('link', 'add', `${id}a`, 'netns', net.scanner, 'type', 'veth', 'peer', 'name', `${id}b`, 'netns', net.target);
      for (const [ns, dev, v4, v6] of [
        [net.scanner, `${id}a`, SCANNER_V4, SCANNER_V6],
        [net.target, `${id}b`, TARGET_V4, TARGET_V6],
      ] as const) {
        await ip('-n', ns, 'link', 'set', 'lo', 'up');
        await ip('-n', ns, 'addr', 'add', `${v4}/24`, 'dev', dev);
        await ip('-n', ns, '-6', 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad');
        await ip('-n', ns, 'link', 'set', dev, 'up');
      }
      // The target has a default route, as hosts do, to a gateway that does not exist: a
      // probe from any source passes its reverse-path check (it would be answered by the
      // interface it came in on), and answers to forged sources stop at the unanswered
      // neighbour lookup, never leaving the target.
      await ip('-n', net.target, 'route', 'add', 'default', 'via', GATEWAY_NOWHERE_V4, 'dev', `${id}b`);
      await ip('-n', net.target, '-6', 'route', 'add', 'default', 'via', GATEWAY_NOWHERE_V6, 'dev', `${id}b`);
      // Until both ends have carrier the interfaces are not RUNNING, and a sentry started
      // then would not yet count their addresses as its own.
      for (const [ns, dev] of [[net.scanner, `${id}a`], [net.target, `${id}b`]] as const) {
        for (let i = 0; (await ip('-n', ns, 'link', 'show', 'dev', dev)).stdout.includes('NO-CARRIER'); i++) {
          if (i > 100) throw new Error(`${dev} has no carrier`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    } catch (err) {
      await net.destroy();
      throw err;
    }
    return net;
  }

  /** One more address for the scanner (a second source), on its end of the veth pair. */
  async addScannerAddress(address: string): Promise<void> {
    const { stdout } = await runProgram(['ip', '-n', this.scanner, '-o', '-4', 'addr', 'show']);
    const dev = new RegExp(`^\\d+: (\\S+)\\s+inet ${SCANNER_V4.replaceAll('.', '\\.')}/`, 'm').exec(stdout)?.[1];
    if (!dev) throw new Error(`no device with ${SCANNER_V4} in ${this.scanner}`);
    await runProgram(['ip', '-n', this.scanner, 'addr', 'add', `${address}/24`, 'dev', dev]);
  }

  exec(ns: string, argv: string[], options: { timeoutMs?: number; input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
    return runProgram(['ip', 'netns', 'exec', ns, ...argv], { timeoutMs: options.timeoutMs ?? 60_000, ...(options.input === undefined ? {} : { input: options.input }) });
  }

  spawn(ns: string, argv: string[]): ChildProcess {
    return spawn('ip', ['netns', 'exec', ns, ...argv], { stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /** Tries a TCP connection from the scanner: open, refused, or timeout (dropped). */
  async connect(host: string, port: number, timeoutMs = 1500): Promise<ConnectResult> {
    return connectFrom(this.scanner, { host, port, timeoutMs });
  }

  /** A real service in the target namespace: accepts, greets, closes. */
  async service(port: number): Promise<ChildProcess> {
    return this.serviceIn(this.target, port);
  }

  /** Greets each connection, then answers each line it receives with the greeting. */
  private async serviceIn(ns: string, port: number): Promise<ChildProcess> {
    const script = `require('node:net').createServer((s) => {
        s.on('error', () => {});
        s.write('hello\\n');
        s.on('data', () => s.write('hello\\n'));
        s.on('end', () => s.end());
        setTimeout(() => s.destroy(), 5000);
      }).listen({ port: ${port}, host: '::', ipv6Only: false }, () => console.log('up'));`;
    const child = this.spawn(ns, [process.execPath, '-e', script]);
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`service on ${port} exited (${code})`)));
    });
    return child;
  }

  /** A real service in the scanner namespace, for the target's outgoing connections. */
  async outsideService(port: number): Promise<ChildProcess> {
    return this.serviceIn(this.scanner, port);
  }

  /**
   * A real TCP session from `ns`: the server greets, the client sends a line, the server
   * answers it, so data flows both ways; returns what the client received.
   */
  async session(ns: string, host: string, port: number): Promise<string> {
    const script = `
      const s = require('node:net').connect({ host: ${JSON.stringify(host)}, port: ${port} });
      let got = '';
      s.setTimeout(3000, () => { console.log(JSON.stringify('timeout')); process.exit(1); });
      s.on('connect', () => s.write('one\\n'));
      s.on('data', (d) => { got += d; if (got.split('\\n').length > 2) { s.end(); } });
      s.on('close', () => console.log(JSON.stringify(got)));`;
    const { stdout } = await this.exec(ns, [process.execPath, '-e', script]);
    return JSON.parse(stdout.trim()) as string;
  }

  async destroy(): Promise<void> {
    for (const ns of [this.scanner, this.target]) await deleteNamespace(ns);
  }
}

export type ConnectResult = 'open' | 'refused' | 'timeout';

/** A TCP connection attempt made from inside `ns` (optionally from a given local address). */
export async function connectFrom(
  ns: string,
  target: { host: string; port: number; timeoutMs: number; localAddress?: string },
): Promise<ConnectResult> {
  const options = { host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) };
  const script = `
    const s = require('node:net').connect(${JSON.stringify(options)});
    const done = (r) => { console.log(r); process.exit(0); };
    s.setTimeout(${target.timeoutMs}, () => done('timeout'));
    s.on('connect', () => done('open'));
    s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'timeout'));`;
  const { stdout } = await runProgram(['ip', 'netns', 'exec', ns, process.execPath, '-e', script], { timeoutMs: 60_000 });
  return stdout.trim() as ConnectResult;
}

/** Kills anything left running inside `ns`, then deletes it; never fails. */
export async function deleteNamespace(ns: string): Promise<void> {
  const { stdout } = await runProgram(['ip', 'netns', 'pids', ns]).catch(() => ({ stdout: '' }));
  for (const pid of stdout.split('\n').filter(Boolean)) {
    try {
      process.kill(Number(pid), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await runProgram(['ip', 'netns', 'del', ns]).catch(() => undefined);
}
