// Carries out responses: node firewall set, route, hosts.deny, command, classic files.
// Every action is attempted on its own; a failure is logged and counted and never stops
// the others or the sentry.
import { reverse } from 'node:dns/promises';
import { classicMode } from '../detect/probe.js';
import type { BlockRecord } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { parseIp, type Family } from '../net/ip.js';
import type { FilesSpec, ResponseSpec } from '../policy/types.js';
import { appendLine, blockedFileFor, classicBlockLine, resetBlockedFiles } from './classic-files.js';
import type { Firewall } from './firewall/firewall.js';
import { addHostsDenyLine, removeHostsDenyLine } from './hosts-deny.js';
import { hostsDenyLine } from './hosts-deny-lines.js';
import { addBlackholeRoute, removeBlackholeRoute } from './route.js';
import { runProgram } from './run-program.js';
import { substituteArgv, type Substitution } from './substitute.js';

/** A host name fit for a log or history line; anything else (newlines, spaces) is dropped. */
const SAFE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/;

export async function resolveName(address: string, timeoutMs = 2000): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), timeoutMs)));
  try {
    const names = await Promise.race([reverse(address).catch(() => null), timeout]);
    const name = names?.[0];
    return name && SAFE_NAME.test(name) ? name : null;
  } finally {
    clearTimeout(timer);
  }
}

export interface ResponderOptions {
  response: ResponseSpec;
  files: FilesSpec;
  firewall: Firewall | null;
  logger: Logger;
  metrics: Metrics;
}

export class Responder {
  private response: ResponseSpec;
  private files: FilesSpec;
  private readonly firewall: Firewall | null;
  private readonly logger: Logger;
  private readonly metrics: Metrics;

  constructor(options: ResponderOptions) {
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

  async start(): Promise<void> {
    if (this.firewall) {
      await this.firewall.setup();
      this.logger.info({ firewall: this.firewall.name }, 'node firewall ready');
    }
    if (this.files.blocked) await this.attempt('blocked-file', () => resetBlockedFiles(this.files.blocked));
  }

  async stop(): Promise<void> {
    if (this.firewall) await this.attempt('firewall', () => this.firewall!.teardown());
  }

  /** Starts a response (block or command only) against `block.source`. */
  async respond(block: BlockRecord): Promise<void> {
    const family = parseIp(block.source)?.family ?? 4;
    const values: Substitution = { target: block.source, port: block.port, mode: classicMode(block.protocol, block.mode) };
    const r = this.response;
    const command = async (): Promise<void> => {
      if (r.command.length) await this.attempt('command', () => runProgram(substituteArgv(r.command, values)));
    };
    if (block.action === 'command') {
      await command();
    } else {
      if (r.runCommandFirst) await command();
      const timeoutMs = block.until - Date.now();
      const firewall = this.firewall;
      if (firewall) await this.attempt('firewall', () => firewall.add(block.source, family, timeoutMs));
      if (r.route.enabled)
        await this.attempt('route', () =>
          r.route.command.length
            ? runProgram(substituteArgv(r.route.command, values))
            : addBlackholeRoute(block.source, family),
        );
      if (r.hostsDeny.enabled)
        await this.attempt('hosts-deny', () => addHostsDenyLine(r.hostsDeny.path, hostsDenyLine(r.hostsDeny.line, { address: block.source, port: block.port, mode: values.mode })));
      if (!r.runCommandFirst) await command();
    }
    await this.writeClassicFiles(block);
  }

  /** Lifts what `respond` set up that can be undone; at shutdown the set goes with its table. */
  async lift(block: BlockRecord, options: { keepFirewall?: boolean } = {}): Promise<void> {
    const family: Family = parseIp(block.source)?.family ?? 4;
    const values: Substitution = { target: block.source, port: block.port, mode: classicMode(block.protocol, block.mode) };
    const r = this.response;
    if (block.action === 'block') {
      const firewall = this.firewall;
      if (firewall && !options.keepFirewall)
        await this.attempt('firewall', () => firewall.remove(block.source, family));
      if (r.route.enabled && r.route.command.length === 0)
        await this.attempt('route', () => removeBlackholeRoute(block.source, family));
      if (r.hostsDeny.enabled)
        await this.attempt('hosts-deny', () => removeHostsDenyLine(r.hostsDeny.path, hostsDenyLine(r.hostsDeny.line, { address: block.source, port: block.port, mode: values.mode })));
    }
    if (r.unblockCommand.length)
      await this.attempt('unblock-command', () => runProgram(substituteArgv(r.unblockCommand, values)));
  }

  private async writeClassicFiles(block: BlockRecord): Promise<void> {
    const { history, blocked } = this.files;
    if (!history && !blocked) return;
    const name = (this.response.resolveHosts && (await resolveName(block.source))) || block.source;
    const line = classicBlockLine(block.since, block.source, name, block.port, block.protocol);
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
