// Runs `kube-portsentry run` as a real process (inside a test namespace) and reads its
// JSON log lines.
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestNet } from './netns.js';

export const CLI = fileURLToPath(new URL('../src/cli.js', import.meta.url));

export type LogLine = Record<string, unknown> & { msg: string; level: string };

export class SentryProcess {
  readonly lines: LogLine[] = [];
  readonly stderr: string[] = [];
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  readonly exited: Promise<number | null>;

  /** Its files directory (--state-dir) and control socket, of its own unless the test gave them. */
  stateDir = '';
  socket = '';

  private constructor(readonly child: ChildProcess) {
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      let nl;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const text = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(text) as LogLine;
        } catch {
          this.stderr.push(`stdout (not JSON): ${text}`);
          continue;
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => (w.pred(line) ? (w.resolve(line), false) : true));
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.stderr.push(chunk));
    this.exited = new Promise((resolve) => child.once('close', (code) => resolve(code)));
  }

  /** Reads the JSON log of any of our processes (agent, operator). */
  static attach(child: ChildProcess): SentryProcess {
    return new SentryProcess(child);
  }

  /**
   * Starts the sentry in the target namespace with a YAML policy (or raw CLI arguments). Each
   * gets a files directory and a control socket of its own (the host's defaults are shared by
   * every test), unless the arguments name them.
   */
  static async start(
    net: TestNet,
    policy: string | { args: string[] },
    extra: string[] = [],
    options: { ownStateDir?: boolean; command?: string[] } = {},
  ): Promise<SentryProcess> {
    const dir = await mkdtemp(join(tmpdir(), 'kps-sentry-'));
    let args: string[];
    if (typeof policy === 'string') {
      const file = join(dir, 'policy.yaml');
      await writeFile(file, policy);
      args = ['run', '--policy', file];
    } else args = ['run', ...policy.args];
    const own = (flag: string, value: string): string[] => (args.includes(flag) ? [] : [flag, value]);
    // ownStateDir false: the files directory is the one the policy's files name (next to the history file).
    const stateArgs = [...(options.ownStateDir === false ? [] : own('--state-dir', join(dir, 'state'))), ...own('--socket', join(dir, 'control.sock'))];
    args.push(...stateArgs, ...extra);
    // `command`: another kube-portsentry than this checkout's (an installed package's).
    const command = options.command ?? [process.execPath, CLI];
    const proc = new SentryProcess(net.spawn(net.target, [...command, ...args, '--log-level', 'debug', '--log-format', 'json']));
    proc.stateDir = args.includes('--state-dir') ? args[args.indexOf('--state-dir') + 1]! : '';
    proc.socket = args[args.indexOf('--socket') + 1]!;
    await proc.waitFor((l) => l.msg === 'sentry ready', 15_000);
    // Admin commands need the control socket, set up right after.
    await proc.waitFor((l) => l.msg === 'admin commands answered on the control socket' || l.msg === 'control socket unavailable', 5_000);
    return proc;
  }

  find(pred: (l: LogLine) => boolean): LogLine | undefined {
    return this.lines.find(pred);
  }

  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new Error(
            `no matching log line within ${timeoutMs} ms; log:\n${this.lines.map((l) => JSON.stringify(l)).join('\n')}\nstderr:\n${this.stderr.join('')}`,
          ),
        );
      }, timeoutMs);
      const onExit = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`sentry exited (${code}) before the log line; stderr:\n${this.stderr.join('')}`));
      };
      void this.exited.then(onExit);
      this.waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
      });
    });
  }

  /** SIGTERM and wait: returns the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Runs an admin command (`blocks`, `block`, ...) in `ns`, as root there would: its exit code and output. */
export function adminIn(net: TestNet, ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = net.spawn(ns, [process.execPath, CLI, ...args]);
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}
