// The admin commands: blocks, block, unblock, status (the running sentry answers over its
// control socket; without it they work from the record and the kernel), flush (the
// standalone sentry's state) and cleanup (an agent's), which share one removal mechanism.
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkAdminRequest, unblockProblem, type AdminRequest } from '../blocks/admin-request.js';
import { RecordError, entryJson, type BlockEntryJson } from '../blocks/entry.js';
import { blockRefusal } from '../blocks/target.js';
import { createLogger } from '../log/logger.js';
import { Metrics } from '../metrics/metrics.js';
import type { PolicyDocument } from '../policy/types.js';
import { holdLock } from '../respond/file-lock.js';
import { DEFAULT_INSTANCE, firewallNames, instanceProblem } from '../respond/firewall/owner.js';
import { NftablesFirewall } from '../respond/firewall/nftables.js';
import { selectFirewall } from '../respond/firewall/select.js';
import { removeOwnedState, type Removed } from '../respond/owned-state.js';
import { Responder } from '../respond/responder.js';
import { askSentry, type Reply } from '../sentry/control-socket.js';
import { hostAddresses } from '../sentry/host-addresses.js';
import { hostProtectedSet } from '../sentry/host-facts.js';
import { HostBlocks } from '../sentry/host-blocks.js';
import { RecordFile } from '../sentry/record-file.js';
import type { RecentDetection, SentryStatus } from '../sentry/sentry.js';
import { DEFAULT_SOCKET, statePaths } from '../sentry/state-paths.js';
import { loadPolicy, POLICY_OPTIONS, splitClassicFlags } from './policy-source.js';
import { UsageError } from './usage.js';

/** A command that could not do what was asked (exit 1); the message says why. */
export class AdminError extends Error {
  override name = 'AdminError';
}

const out = (text: string): void => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);

interface Parsed {
  policy: PolicyDocument;
  /** --state-dir, when given. */
  stateDir: string | undefined;
  socket: string;
  json: boolean;
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
}

async function parse(args: string[], extra: Record<string, { type: 'string' | 'boolean' }> = {}): Promise<Parsed> {
  const { classic, rest } = splitClassicFlags(args);
  const { values, positionals } = parseArgs({
    args: rest,
    options: { ...POLICY_OPTIONS, socket: { type: 'string', default: DEFAULT_SOCKET }, json: { type: 'boolean', default: false }, ...extra },
    strict: true,
    allowPositionals: true,
  });
  const policy = await loadPolicy(values as { policy?: string; config?: string; defaults?: string }, classic);
  return { policy, stateDir: values['state-dir'] as string | undefined, socket: values.socket as string, json: values.json as boolean, positionals, values };
}

/** The request checked here first (bad input changes nothing); the socket carries `raw`, which the sentry checks again. */
function checked(raw: Record<string, unknown>): AdminRequest {
  const result = checkAdminRequest(raw);
  if (!result.ok) throw new UsageError(result.error);
  return result.request;
}

/** The running sentry's reply, or null when none listens; a refusal becomes an AdminError. */
async function ask(socket: string, request: Record<string, unknown>): Promise<(Reply & { ok: true }) | null> {
  const reply = await askSentry(socket, request);
  if (!reply) return null;
  if (!reply.ok) throw new AdminError(reply.error);
  return reply;
}

/**
 * Works on the record and the kernel while no sentry runs, holding the files directory's
 * lock so that a sentry starting meanwhile waits for nothing half done.
 */
async function withoutSentry<T>(p: Parsed, work: (host: HostBlocks) => Promise<T>): Promise<T> {
  const { policy, socket } = p;
  const spec = policy.spec;
  const paths = statePaths(spec.files, p.stateDir);
  await mkdir(paths.dir, { recursive: true });
  const lock = await holdLock(paths.runLock);
  if ('heldBy' in lock)
    throw new AdminError(`a sentry (pid ${lock.heldBy}) runs with the files in ${paths.dir} but does not answer on ${socket}: give its --socket`);
  try {
    const names = firewallNames({ kind: 'standalone', stateDir: paths.dir });
    const firewall = await selectFirewall(spec.response.firewall, names);
    const logger = createLogger('warn', 'kube-portsentry', 'text', process.stderr);
    const metrics = new Metrics();
    const responder = new Responder({ response: spec.response, files: spec.files, firewall, logger, metrics, routeMark: { metric: names.routeMetric }, lockDir: paths.dir });
    return await work(new HostBlocks({ response: spec.response, paths, names, firewall, responder, logger, metrics }));
  } finally {
    await lock.release();
  }
}

const time = (ms: number | null): string => (ms === null ? 'never' : new Date(ms).toISOString().replace('T', ' ').slice(0, 19));

function left(until: number | null, now: number): string {
  if (until === null) return '';
  const s = Math.max(0, Math.round((until - now) / 1000));
  return s >= 3600 ? ` (in ${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m)` : s >= 60 ? ` (in ${Math.floor(s / 60)}m)` : ` (in ${s}s)`;
}

/** Blocks as JSON: times as ISO text as well as the record's milliseconds. */
const asJson = (e: BlockEntryJson) => ({ ...e, sinceTime: new Date(e.since).toISOString(), expires: e.until === null ? null : new Date(e.until).toISOString() });

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

function blocksTable(blocks: BlockEntryJson[]): string {
  if (!blocks.length) return 'no blocks in force';
  const now = Date.now();
  return table([
    ['ADDRESS', 'ORIGIN', 'REASON', 'PORTS', 'SINCE', 'EXPIRES'],
    ...blocks.map((b) => [b.address, b.origin, b.reason, b.ports.join(',') || '-', time(b.since), `${time(b.until)}${left(b.until, now)}`]),
  ]);
}

export async function blocksCommand(args: string[]): Promise<number> {
  const p = await parse(args);
  if (p.positionals.length) throw new UsageError('blocks takes no arguments');
  const reply = await ask(p.socket, { command: 'blocks' });
  const blocks = reply ? (reply.blocks as BlockEntryJson[]) : (await new RecordFile(statePaths(p.policy.spec.files, p.stateDir).record).load()).map(entryJson);
  if (p.json) out(JSON.stringify({ running: reply !== null, blocks: blocks.map(asJson) }, null, 2));
  else {
    if (!reply) process.stderr.write('kube-portsentry: the sentry is not running; the blocks of its record:\n');
    out(blocksTable(blocks));
  }
  return 0;
}

export async function blockCommand(args: string[]): Promise<number> {
  const p = await parse(args, { duration: { type: 'string' }, reason: { type: 'string' } });
  if (p.positionals.length !== 1) throw new UsageError('block takes one address or CIDR');
  const raw = { command: 'block', address: p.positionals[0], duration: p.values.duration, reason: p.values.reason };
  const request = checked(raw);
  if (request.command !== 'block') throw new Error('unreachable');
  const reply = await ask(p.socket, raw);
  let entry: BlockEntryJson;
  if (reply) entry = reply.entry as BlockEntryJson;
  else
    entry = await withoutSentry(p, async (host) => {
      const refusal = blockRefusal(request.target, { own: hostAddresses(), ignore: p.policy.spec.ignore, protected: await hostProtectedSet() });
      if (refusal) throw new AdminError(`refusing to block: ${refusal}`);
      await host.open();
      return entryJson(await host.block(request.target, request.durationMs === null ? null : Date.now() + request.durationMs, request.reason));
    });
  out(p.json ? JSON.stringify(asJson(entry), null, 2) : `blocked ${entry.address} until ${time(entry.until)}${reply ? '' : ' (the sentry is not running: recorded for its next start)'}`);
  return 0;
}

export async function unblockCommand(args: string[]): Promise<number> {
  const p = await parse(args);
  if (p.positionals.length !== 1) throw new UsageError('unblock takes one address or CIDR');
  const raw = { command: 'unblock', address: p.positionals[0] };
  const request = checked(raw);
  if (request.command !== 'unblock') throw new Error('unreachable');
  const reply = await ask(p.socket, raw);
  if (!reply)
    await withoutSentry(p, async (host) => {
      await host.open();
      const problem = unblockProblem(request.target, host.list());
      if (problem) throw new AdminError(problem);
      if (!(await host.unblock(request.target))) throw new AdminError(`${request.target.text} is not blocked`);
    });
  out(`unblocked ${request.target.text}`);
  return 0;
}

function ports(list: number[] | number): string {
  if (typeof list === 'number') return `${list} ports`;
  if (!list.length) return 'none';
  return list.length > 40 ? `${list.slice(0, 40).join(',')},... (${list.length})` : list.join(',');
}

function statusText(s: SentryStatus, blocks: BlockEntryJson[]): string {
  const lines = [`kube-portsentry: running (policy ${s.policy}, firewall ${s.firewall})`];
  for (const p of ['tcp', 'udp'] as const) {
    const fast = s.kernelFastPath.includes(p) ? ', kernel fast path' : '';
    lines.push(`${p.toUpperCase()}: ${s.modes[p]}${fast}; watching ${ports(s.watched[p])}; in use, skipped: ${ports(s.inUse[p])}`);
  }
  lines.push(`tracked sources: ${s.trackedSources}`, `blocks in force: ${s.blocks}`);
  if (blocks.length) lines.push(blocksTable(blocks).replace(/^/gm, '  '));
  lines.push(s.recent.length ? 'last detections:' : 'no detections yet');
  for (const d of [...s.recent].reverse() as RecentDetection[])
    lines.push(`  ${time(d.time)}  ${d.source}  ${d.scan}  ${d.protocol.toUpperCase()} ${d.port}  ${d.decision === 'respond' ? d.action : 'alert'}`);
  return lines.join('\n');
}

export async function statusCommand(args: string[]): Promise<number> {
  const p = await parse(args);
  if (p.positionals.length) throw new UsageError('status takes no arguments');
  const reply = await ask(p.socket, { command: 'status' });
  if (reply) {
    out(p.json ? JSON.stringify({ running: true, status: reply.status, blocks: (reply.blocks as BlockEntryJson[]).map(asJson) }, null, 2) : statusText(reply.status as SentryStatus, reply.blocks as BlockEntryJson[]));
    return 0;
  }
  const paths = statePaths(p.policy.spec.files, p.stateDir);
  const blocks = (await new RecordFile(paths.record).load()).map(entryJson);
  // What the kernel holds meanwhile: the table stays while the sentry is down.
  const names = firewallNames({ kind: 'standalone', stateDir: paths.dir });
  const table = new NftablesFirewall('nft', names.table, names);
  const kernel = await Promise.all([table.list(4), table.list(6)]).then(
    ([v4, v6]) => v4.length + v6.length,
    () => null,
  );
  const inKernel = kernel === null ? `no nftables table inet ${names.table}` : `${kernel} entries in nftables table inet ${names.table}`;
  if (p.json) out(JSON.stringify({ running: false, blocks: blocks.map(asJson), kernelEntries: kernel }, null, 2));
  else out(`kube-portsentry: not running (no sentry on ${p.socket})\nkernel: ${inKernel}\nblocks in its record: ${blocks.length}${blocks.length ? `\n${blocksTable(blocks).replace(/^/gm, '  ')}` : ''}`);
  // As an init script's status: 3 for a service that is not running.
  return 3;
}

function removedText(removed: Removed): string {
  const parts = [
    ...removed.firewall,
    ...(removed.routes.length ? [`${removed.routes.length} blackhole routes`] : []),
    ...(removed.hostsDenyLines.length ? [`${removed.hostsDenyLines.length} hosts.deny lines`] : []),
  ];
  return parts.length ? parts.join('; ') : 'nothing in place';
}

export async function flushCommand(args: string[]): Promise<number> {
  const p = await parse(args);
  if (p.positionals.length) throw new UsageError('flush takes no arguments');
  if (await askSentry(p.socket, { command: 'status' }))
    throw new AdminError(`the sentry is running (${p.socket}): stop it first (it keeps its table while it runs), or run it with --flush-on-exit`);
  const { removed, lifted } = await withoutSentry(p, async (host) => {
    try {
      await host.load();
    } catch (err) {
      // A damaged record names no block; what is in place is still found by its marks.
      if (!(err instanceof RecordError)) throw err;
      process.stderr.write(`warning: ${err.message}; removing by marks only\n`);
    }
    const lifted = host.size;
    return { removed: await host.flush(), lifted };
  });
  out(`flushed: ${lifted} blocks lifted; removed ${removedText(removed)}; record ${statePaths(p.policy.spec.files, p.stateDir).record} deleted`);
  return 0;
}

export async function cleanupCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { instance: { type: 'string', default: DEFAULT_INSTANCE } }, strict: true, allowPositionals: true });
  if (positionals.length) throw new UsageError('cleanup takes no arguments');
  const problem = instanceProblem(values.instance!);
  if (problem) throw new UsageError(`--${problem}`);
  const removed = await removeOwnedState({ names: firewallNames({ kind: 'agent', instance: values.instance! }) });
  out(`cleaned up agent instance ${values.instance}: removed ${removedText(removed)}`);
  return 0;
}
