// `kube-portsentry run`: the standalone sentry as a host service, with its control socket
// for the admin commands and, optionally, its metrics endpoint.
import { mkdir } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { checkAdminRequest, unblockProblem } from '../blocks/admin-request.js';
import { blockRefusal } from '../blocks/target.js';
import { entryJson } from '../blocks/entry.js';
import { createLogger } from '../log/logger.js';
import { Metrics } from '../metrics/metrics.js';
import { startMetricsServer } from '../metrics/server.js';
import { holdLock } from '../respond/file-lock.js';
import { serveControl, type Reply } from '../sentry/control-socket.js';
import { Sentry } from '../sentry/sentry.js';
import { DEFAULT_SOCKET, statePaths } from '../sentry/state-paths.js';
import { logOptions, LOG_OPTIONS } from './log-options.js';
import { compileDocument } from '../policy/compiled.js';
import { loadPolicy, POLICY_OPTIONS, splitClassicFlags } from './policy-source.js';

/** Answers one admin request from the running sentry. */
export async function answer(sentry: Sentry, raw: unknown): Promise<Reply> {
  const checked = checkAdminRequest(raw);
  if (!checked.ok) return { ok: false, error: checked.error };
  const request = checked.request;
  switch (request.command) {
    case 'blocks':
      return { ok: true, blocks: sentry.blocksInForce().map(entryJson) };
    case 'status':
      return { ok: true, status: sentry.status(), blocks: sentry.blocksInForce().map(entryJson) };
    case 'block': {
      const refusal = blockRefusal(request.target, sentry.neverBlocked());
      if (refusal) return { ok: false, error: `refusing to block: ${refusal}` };
      const until = request.durationMs === null ? null : Date.now() + request.durationMs;
      return { ok: true, entry: entryJson(await sentry.block(request.target, until, request.reason)) };
    }
    case 'unblock': {
      const problem = unblockProblem(request.target, sentry.blocksInForce());
      if (problem) return { ok: false, error: problem };
      const entry = await sentry.unblock(request.target);
      return entry ? { ok: true, entry: entryJson(entry) } : { ok: false, error: `${request.target.text} is not blocked (its trigger state was reset)` };
    }
  }
}

export async function runCommand(args: string[]): Promise<number> {
  const { classic, rest } = splitClassicFlags(args);
  const { values } = parseArgs({
    args: rest,
    options: {
      ...POLICY_OPTIONS,
      ...LOG_OPTIONS,
      socket: { type: 'string', default: DEFAULT_SOCKET },
      'flush-on-exit': { type: 'boolean', default: false },
      'metrics-address': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const { level, format } = logOptions(values);
  const policy = await loadPolicy(values, classic);
  const logger = createLogger(level, 'kube-portsentry', format);
  const stateDir = values['state-dir'];
  const paths = statePaths(policy.spec.files, stateDir);
  await mkdir(paths.dir, { recursive: true, mode: 0o755 });
  // One sentry per files directory: two would each reconcile the other's blocks away.
  const lock = await holdLock(paths.runLock);
  if ('heldBy' in lock) {
    logger.fatal({ pid: lock.heldBy, dir: paths.dir }, 'another kube-portsentry sentry runs with this files directory');
    return 1;
  }
  const metrics = new Metrics();
  const sentry = new Sentry(compileDocument(policy), logger, metrics, { flushOnExit: values['flush-on-exit']!, ...(stateDir ? { stateDir } : {}) });
  let server: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  let control: Awaited<ReturnType<typeof serveControl>> | null = null;
  let stopping: Promise<void> | undefined;
  const stop = (signal: string): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ signal }, 'stopping');
      await control?.close();
      await sentry.stop();
      server?.close();
      await lock.release();
    })());
  const done = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => void stop(signal).then(() => resolve(0), () => resolve(1)));
  });
  try {
    await sentry.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot start');
    await sentry.stop().catch(() => undefined);
    await lock.release();
    return 1;
  }
  try {
    const serving = await serveControl(values.socket!, (request) => answer(sentry, request));
    // A signal may have come while the socket was being set up: it goes with the rest.
    if (stopping) await serving.close();
    else control = serving;
    logger.info({ socket: values.socket }, 'admin commands answered on the control socket');
  } catch (err) {
    // The sentry still guards the host; the admin commands work from the record meanwhile.
    logger.error({ socket: values.socket, err: (err as Error).message }, 'control socket unavailable');
  }
  if (values['metrics-address']) {
    server = await startMetricsServer(values['metrics-address'], metrics.registry, {
      health: () => null,
      ready: () => (sentry.ready ? null : 'not ready'),
    });
    logger.info({ address: values['metrics-address'] }, 'serving /metrics, /healthz, /readyz');
  }
  return done;
}
