// The endpoint agents post detections to. Every request carries the agent's ServiceAccount
// token (audience-bound); the API server vouches for it through a TokenReview. Bodies are
// size-limited and parsed strictly; nothing changes state unless all checks pass.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { Logger } from '../log/logger.js';
import type { OperatorMetrics } from '../metrics/operator-metrics.js';
import { parseListenAddress } from '../metrics/server.js';
import { MAX_REPORT_BYTES, parseReport, REPORT_PATH, STANDBY_HEADER, type Report } from '../cluster/report.js';
import { ReviewThrottled, type Authenticator } from './token-authenticator.js';

export interface ReportServerOptions {
  address: string;
  /** Certificate and key files, read again every `tlsReloadMs` (10 s): a renewal takes effect live. */
  tls?: { cert: string; key: string };
  tlsReloadMs?: number;
  authenticate: Authenticator;
  /** system:serviceaccount:NS:NAME allowed to report. */
  allowedUser: string;
  /**
   * Accept tokens bound to no pod (which could report for any node). Off unless asked for:
   * tests use it; the chart never does.
   */
  allowUnboundTokens?: boolean;
  isLeader: () => boolean;
  /**
   * Takes a report in; resolves once the BlockedHosts it calls for are written, so a 200 means
   * the detection is durable (the agent retries on anything else, and a retry is idempotent).
   */
  accept: (report: Report, trace: ReportTrace) => Promise<void>;
  logger: Logger;
  metrics: OperatorMetrics;
  /** How long a client may take to send its headers and its whole request (10 s and 30 s). */
  timeouts?: { headersMs: number; requestMs: number };
}

/** When a report arrived and when its token was settled (process.hrtime.bigint(), CLOCK_MONOTONIC): the stage timings of debug logs. */
export interface ReportTrace {
  receivedAt: bigint;
  authenticatedAt: bigint;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly result: string,
  ) {
    super(message);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > MAX_REPORT_BYTES) {
      reject(new HttpError(413, `body over ${MAX_REPORT_BYTES} bytes`, 'invalid'));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > MAX_REPORT_BYTES) {
        // Stop reading but keep the socket: the 413 goes out, then the connection closes.
        req.off('data', onData);
        req.pause();
        chunks.length = 0;
        reject(new HttpError(413, `body over ${MAX_REPORT_BYTES} bytes`, 'invalid'));
        return;
      }
      chunks.push(c);
    };
    req.on('data', onData);
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    // A client that goes away (or is cut off by the request timeout, with a 408) is a bad request, not our failure.
    req.on('error', (err) => reject(new HttpError(400, `request aborted: ${err.message}`, 'invalid')));
  });
}

export async function startReportServer(o: ReportServerOptions): Promise<Server> {
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const receivedAt = process.hrtime.bigint();
    try {
      if ((req.url ?? '').split('?')[0] !== REPORT_PATH) throw new HttpError(404, 'not found', 'invalid');
      if (req.method !== 'POST') throw new HttpError(405, 'use POST', 'invalid');
      const auth = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
      if (!auth) throw new HttpError(401, 'a bearer token is required', 'unauthenticated');
      const identity = await o.authenticate(auth[1]!).catch((err: unknown) => {
        if (err instanceof ReviewThrottled) throw new HttpError(503, err.message, 'throttled');
        throw new HttpError(503, 'cannot verify tokens right now', 'unavailable');
      });
      const authenticatedAt = process.hrtime.bigint();
      if (!identity) throw new HttpError(401, 'token rejected', 'unauthenticated');
      if (identity.username !== o.allowedUser) throw new HttpError(403, `${identity.username} may not report`, 'forbidden');
      // A token bound to no pod names no node, and could report for any.
      if (!identity.node && !o.allowUnboundTokens) throw new HttpError(403, 'the token is not bound to a pod', 'forbidden');
      // The standby answers before reading the body: an agent's retries cost it no parse.
      if (!o.isLeader()) throw new HttpError(503, 'not the leader', 'not-leader');
      const body = await readBody(req);
      let report: Report;
      try {
        report = parseReport(body);
      } catch (err) {
        throw new HttpError(400, (err as Error).message, 'invalid');
      }
      if (identity.node && identity.node !== report.node)
        throw new HttpError(403, `token of node ${identity.node} cannot report for ${report.node}`, 'forbidden');
      await o.accept(report, { receivedAt, authenticatedAt }).catch((err: unknown) => {
        throw new HttpError(503, `cannot record the report: ${(err as Error).message}`, 'unavailable');
      });
      o.metrics.reportsReceived.inc({ result: 'ok' });
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ accepted: report.sources.length }));
    } catch (err) {
      const e = err instanceof HttpError ? err : new HttpError(500, (err as Error).message, 'error');
      o.metrics.reportsReceived.inc({ result: e.result });
      if (e.status >= 500 && e.result !== 'not-leader') o.logger.warn({ err: e.message }, 'report failed');
      const headers: Record<string, string> = { 'content-type': 'application/json', connection: 'close' };
      if (e.status === 503) headers['retry-after'] = '1';
      // The Service picked the standby replica: the agent's next connection may reach the leader at once.
      if (e.result === 'not-leader') headers[STANDBY_HEADER] = 'standby';
      // A body left unread (refused before or while reading it) is not drained: the
      // connection closes once the answer is out.
      if (!res.headersSent) res.writeHead(e.status, headers).end(JSON.stringify({ error: e.message }), () => { if (!req.complete) req.socket.destroy(); });
      else if (!req.complete) req.socket.destroy();
    }
  };
  const listener = (req: IncomingMessage, res: ServerResponse) => void handle(req, res);
  const { headersMs, requestMs } = o.timeouts ?? { headersMs: 10_000, requestMs: 30_000 };
  // Expired requests are found by a periodic check (30 s by default), so it runs often
  // enough for the limits to hold: a slow client gets its 408 on time.
  const limits = { headersTimeout: headersMs, requestTimeout: requestMs, connectionsCheckingInterval: Math.min(headersMs, requestMs) / 4 };
  const server = o.tls ? createHttpsServer({ cert: readFileSync(o.tls.cert), key: readFileSync(o.tls.key), ...limits }, listener) : createHttpServer(limits, listener);
  if (o.tls) reloadCertificate(server as HttpsServer, o.tls, o.tlsReloadMs ?? 10_000, o.logger);
  const { host, port } = parseListenAddress(o.address);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/**
 * Serves a renewed certificate (cert-manager, a rotated Secret) without a restart: the files
 * are compared every `everyMs`, and a changed pair that loads replaces the old one for new
 * connections. A pair caught half-written fails to load and is tried again next time.
 */
function reloadCertificate(server: HttpsServer, files: { cert: string; key: string }, everyMs: number, logger: Logger): void {
  let loaded = `${readFileSync(files.cert, 'utf8')}\n${readFileSync(files.key, 'utf8')}`;
  const timer = setInterval(() => {
    void Promise.all([readFile(files.cert, 'utf8'), readFile(files.key, 'utf8')]).then(
      ([cert, key]) => {
        if (`${cert}\n${key}` === loaded) return;
        try {
          server.setSecureContext({ cert, key });
          loaded = `${cert}\n${key}`;
          logger.info({ cert: files.cert }, 'report endpoint certificate reloaded');
        } catch (err) {
          logger.warn({ cert: files.cert, err: (err as Error).message }, 'new report endpoint certificate does not load yet; keeping the old one');
        }
      },
      (err: unknown) => logger.warn({ cert: files.cert, err: (err as Error).message }, 'cannot read the report endpoint certificate; keeping the old one'),
    );
  }, everyMs);
  timer.unref();
  server.once('close', () => clearInterval(timer));
}
