// Carries out responses: node firewall set, route, hosts.deny, command, classic files.
// Every action is attempted on its own; a failure is logged and counted and never stops
// the others or the sentry.
import { reverse } from 'node:dns/promises';
import { mkdir, open } from 'node:fs/promises';
import { dirname } from 'node:path';
import { classicMode, type ClassicMode } from '../policy/classic-modes.js';
import type { BlockRecord } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { AddressOrNetwork } from '../net/address.js';
import type { FilesSpec, ResponseSpec } from '../policy/types.js';
import { appendLine, blockedFileFor, classicBlockLine, resetBlockedFiles } from './classic-files.js';
import type { Firewall } from './firewall/firewall.js';
import { addHostsDenyLine, removeHostsDenyLine } from './hosts-deny.js';
import { hostsDenyLine } from './hosts-deny-lines.js';
import { addBlackholeRoute, removeBlackholeRoute, type RouteMark } from './route.js';
import { runProgram } from './run-program.js';
import { substituteArgv, type Substitution } from './substitute.js';

/** A host name fit for a log or history line; anything else (newlines, spaces) is dropped. */
const SAFE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;
/**
 * A last label of digits only makes an address literal, not a name ("192.0.2.1", and the
 * shorter forms inet_aton reads, "10.1", "3221225985"): no top-level domain is numeric.
 */
const ADDRESS_LIKE = /(?:^|\.)(?:[0-9]+|0x[0-9a-f]+)$/i;

/** Whether a PTR answer may stand as a name beside the address (never an address itself). */
export function isSafeName(name: string): boolean {
  return SAFE_NAME.test(name) && !ADDRESS_LIKE.test(name);
}

export async function resolveName(address: string, timeoutMs = 2000): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
  try {
    const names = await Promise.race([reverse(address).catch(() => null), timeout]);
    const name = names?.[0];
    return name && isSafeName(name) ? name : null;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A block as its actions need it: the address or network, until when (null: until lifted),
 * the tag its kernel entry carries, and for a detection the port and mode commands use.
 */
export interface Blocked {
  target: AddressOrNetwork;
  until: number | null;
  tag: 'detected' | 'manual';
  probe?: { port: number; mode: ClassicMode };
}

/** The blocking actions (firewall set, route, hosts.deny line) one call carries out. */
export interface BlockActions {
  firewall?: boolean;
  route?: boolean;
  hostsDeny?: boolean;
}

/** What was done, in PortSentry's words where it had them (classic log lines). */
export interface Done {
  action: 'firewall' | 'route' | 'hosts-deny' | 'command';
  /** The route, hosts.deny line or command, as carried out. */
  detail: string;
}

export interface ResponderOptions {
  response: ResponseSpec;
  files: FilesSpec;
  firewall: Firewall | null;
  logger: Logger;
  metrics: Metrics;
  /** How the owner marks its blackhole routes. */
  routeMark: RouteMark;
  /** Where hosts.deny's lock file goes (a directory the sentry may write). */
  lockDir?: string;
}

const ALL: Required<BlockActions> = { firewall: true, route: true, hostsDeny: true };

export class Responder {
  private response: ResponseSpec;
  private files: FilesSpec;
  private readonly firewall: Firewall | null;
  private readonly logger: Logger;
  private readonly metrics: Metrics;

  constructor(private readonly options: ResponderOptions) {
    this.response = options.response;
    this.files = options.files;
    this.firewall = options.firewall;
    this.logger = options.logger;
    this.metrics = options.metrics;
  }

  reconfigure(response: ResponseSpec, files: FilesSpec): void {
    this.response = response;
    this.files = files;
  }

  /** The blocked files start empty; the history file exists from the start, so fail2ban can follow it. */
  async start(): Promise<void> {
    if (this.files.blocked) await this.attempt('blocked-file', () => resetBlockedFiles(this.files.blocked));
    const history = this.files.history;
    if (history)
      await this.attempt('history', async () => {
        await mkdir(dirname(history), { recursive: true });
        await (await open(history, 'a', 0o640)).close();
      });
  }

  /** The hosts.deny line of a block, or null when hosts.deny is off or the line cannot be made for it. */
  hostsDenyLineOf(b: Pick<Blocked, 'target' | 'probe'>): string | null {
    const spec = this.response.hostsDeny;
    if (!spec.enabled) return null;
    try {
      return hostsDenyLine(spec.line, { target: b.target, ...(b.probe ? { port: b.probe.port, mode: b.probe.mode } : {}) });
    } catch {
      return null;
    }
  }

  /** True when the policy's route action is the built-in blackhole route, which can be reconciled. */
  get builtInRoutes(): boolean {
    return this.response.route.enabled && this.response.route.command.length === 0;
  }

  /** Starts a detection's response (block or command only) against `block.source`. */
  async respond(block: BlockRecord): Promise<Done[]> {
    const mode = classicMode(block.protocol, block.mode);
    const values: Substitution = { target: block.source, port: block.port, mode };
    const r = this.response;
    const done: Done[] = [];
    const command = async (): Promise<void> => {
      if (!r.command.length) return;
      const argv = substituteArgv(r.command, values);
      if (await this.attempt('command', () => runProgram(argv))) done.push({ action: 'command', detail: argv.join(' ') });
    };
    if (block.action === 'command') {
      await command();
    } else {
      if (r.runCommandFirst) await command();
      done.push(...(await this.block({ target: block.source, until: block.until, tag: 'detected', probe: { port: block.port, mode } })));
      if (r.route.enabled && r.route.command.length) {
        const argv = substituteArgv(r.route.command, values);
        if (await this.attempt('route', () => runProgram(argv))) done.push({ action: 'route', detail: argv.join(' ') });
      }
      if (!r.runCommandFirst) await command();
    }
    await this.writeClassicFiles(block);
    return done;
  }

  /** The blocking actions for `b` (all by default; a reconcile puts back only what is missing). */
  async block(b: Blocked, which: BlockActions = ALL): Promise<Done[]> {
    const done: Done[] = [];
    const firewall = this.firewall;
    if (firewall && which.firewall) {
      const timeoutMs = b.until === null ? Infinity : b.until - Date.now();
      if (timeoutMs > 0 && (await this.attempt('firewall', () => firewall.add(b.target, timeoutMs, b.tag))))
        done.push({ action: 'firewall', detail: firewall.name });
    }
    if (this.builtInRoutes && which.route && (await this.attempt('route', () => addBlackholeRoute(b.target, this.options.routeMark))))
      done.push({ action: 'route', detail: `ip route replace blackhole ${b.target.text}` });
    const line = which.hostsDeny ? this.hostsDenyLineOf(b) : null;
    if (line !== null && (await this.attempt('hosts-deny', () => addHostsDenyLine(this.response.hostsDeny.path, line, this.lockOptions))))
      done.push({ action: 'hosts-deny', detail: line });
    return done;
  }

  /** Lifts what `respond` or `block` set up that can be undone; at shutdown the set may stay. */
  async lift(b: Blocked, options: { keepFirewall?: boolean } = {}): Promise<void> {
    const firewall = this.firewall;
    if (firewall && !options.keepFirewall) await this.attempt('firewall', () => firewall.remove(b.target));
    if (this.builtInRoutes) await this.attempt('route', () => removeBlackholeRoute(b.target, this.options.routeMark));
    const line = this.hostsDenyLineOf(b);
    if (line !== null) await this.attempt('hosts-deny', () => removeHostsDenyLine(this.response.hostsDeny.path, line, this.lockOptions));
    await this.runUnblockCommand(b);
  }

  /** The policy's unblock command, for a detection (it takes the probe's port and mode: a manual block has none). */
  async runUnblockCommand(b: Blocked): Promise<void> {
    const r = this.response;
    if (!r.unblockCommand.length || !b.probe) return;
    const values: Substitution = { target: b.target, port: b.probe.port, mode: b.probe.mode };
    await this.attempt('unblock-command', () => runProgram(substituteArgv(r.unblockCommand, values)));
  }

  private get lockOptions(): { lockDir?: string } {
    return this.options.lockDir ? { lockDir: this.options.lockDir } : {};
  }

  private async writeClassicFiles(block: BlockRecord): Promise<void> {
    const { history, blocked } = this.files;
    if (!history && !blocked) return;
    const address = block.source.text;
    const name = (this.response.resolveHosts && (await resolveName(address))) || address;
    const line = classicBlockLine(block.since, name, address, block.port, block.protocol);
    if (history) await this.attempt('history', () => appendLine(history, line));
    const mode = classicMode(block.protocol, block.mode);
    if (blocked) await this.attempt('blocked-file', () => appendLine(blockedFileFor(blocked, mode), line));
  }

  private async attempt(action: string, fn: () => Promise<unknown>): Promise<boolean> {
    try {
      await fn();
      return true;
    } catch (err) {
      this.metrics.actionErrors.inc({ action });
      this.logger.error({ action, err: (err as Error).message }, 'action failed');
      return false;
    }
  }
}

/** A detection's block in the shape the actions take. */
export function blockedOf(block: BlockRecord): Blocked {
  return { target: block.source, until: block.until, tag: 'detected', probe: { port: block.port, mode: classicMode(block.protocol, block.mode) } };
}
