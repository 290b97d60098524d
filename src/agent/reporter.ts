// Sends queued detections to the operator: a new source's first report at once (within a
// budget, so a flood of forged fresh sources is not a flood of requests), the rest batched at
// the interval and by size; one request at a time, retried with capped backoff, rotating through the operator URLs on failure (a replica that is not the
// leader answers 503). The ServiceAccount token is read from its file for every request,
// since the kubelet rotates projected tokens.
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { RateLimiter } from '../engine/rate-limiter.js';
import { MAX_REPORT_BYTES, REPORT_PATH, STANDBY_HEADER, reportEnvelopeBytes, type Report, type ReportedHost } from '../cluster/report.js';
import type { ReportQueue } from './report-queue.js';

export interface ReporterOptions {
  urls: string[];
  /** PEM CA bundle that signs the operator's serving certificate; read again before each report, as it may be rotated. */
  caFile?: string;
  tokenFile: string;
  /** How the operator URLs' host names are resolved (default: the system resolver). */
  lookup?: LookupFunction;
  node: string;
  policy: () => string | null;
  /** Why detection is off on this node, or null: sent on change, and every 30 s while off. */
  detectionOff?: () => string | null;
  /** The node's facts the operator must protect too: sent with every report, and alone once a minute. */
  host?: () => ReportedHost;
  queue: ReportQueue;
  intervalMs: number;
  logger: Logger;
  metrics: Metrics;
  /** The largest body to send; the operator's limit (MAX_REPORT_BYTES) unless told otherwise. */
  maxReportBytes?: number;
}

const MAX_BACKOFF_MS = 10_000;
/**
 * The Service sends each connection to either replica, and the standby answers 503: so
 * many tries in a row go again soon on a new connection, as a backoff that grows would
 * leave a detection waiting for seconds on a coin toss; then the backoff takes over (no
 * leader at all, during a failover).
 */
const STANDBY_RETRIES = { fast: 10, delayMs: 100 };
/** While detection is off, the state goes again this often: a new leader learns it in time. */
const STATE_REFRESH_MS = 30_000;
/** A batch is never cut below this by 413s; one source alone always goes. */
const MIN_REPORT_BYTES = 16 * 1024;
/** A report with no sources goes out this often, so the operator keeps the node's facts. */
const HOST_FACTS_MS = 60_000;
/** A new source's first report goes at once within this budget (a burst, then so many a second); past it, at the interval. */
export const PROMPT_REPORTS = { burst: 20, perSecond: 50 };

export class Reporter {
  private timer: NodeJS.Timeout | undefined;
  /** The next try after a failure, at its time rather than at the next interval. */
  private retryTimer: NodeJS.Timeout | undefined;
  private sending = false;
  private backoffMs = 0;
  /** Tries in a row that reached the standby replica. */
  private standbyHits = 0;
  private nextAt = 0;
  private urlIndex = 0;
  private httpsAgent: HttpsAgent;
  private ca: string | undefined;
  private readonly httpAgent: HttpAgent;
  private stopped = false;
  /** Body size aimed at: halved when the operator answers 413, grown back as reports go through. */
  private budgetBytes: number;
  /** The detection state the operator acknowledged last, and when. */
  private sentOff: string | null = null;
  private sentOffAt = 0;
  /** The host facts the operator last acknowledged, and when. */
  private hostSent = { text: '', at: 0 };
  /** Budget of reports sent at once for a new source. */
  private readonly prompt = new RateLimiter(PROMPT_REPORTS.perSecond * 60, Date.now(), PROMPT_REPORTS.burst);
  /** A new source came while a request was in flight: it goes when that one ends. */
  private promptWanted = false;

  constructor(private readonly o: ReporterOptions) {
    this.budgetBytes = o.maxReportBytes ?? MAX_REPORT_BYTES;
    this.httpsAgent = new HttpsAgent({ keepAlive: true, ...this.lookup() });
    this.httpAgent = new HttpAgent({ keepAlive: true, ...this.lookup() });
  }

  private lookup(): { lookup?: LookupFunction } {
    return this.o.lookup ? { lookup: this.o.lookup } : {};
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
    this.o.queue.listen(() => this.newSource());
  }

  /** A source was queued for the first time: its report goes now, unless backing off or past the prompt budget. */
  private newSource(): void {
    if (this.stopped) return;
    if (this.sending) {
      this.promptWanted = true;
      return;
    }
    const now = Date.now();
    if (now < this.nextAt || !this.prompt.take(now)) return;
    void this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    // One last try, so a clean shutdown loses nothing it could have sent.
    if (!this.sending) await this.tick(true);
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private async tick(final = false): Promise<void> {
    const { queue, metrics } = this.o;
    metrics.reportQueue.set(queue.size);
    const off = this.o.detectionOff?.() ?? null;
    const stateDue = off !== this.sentOff || (off !== null && Date.now() - this.sentOffAt > STATE_REFRESH_MS);
    const host = this.o.host?.();
    const hostText = host ? JSON.stringify(host) : '';
    const hostDue = !!host && (hostText !== this.hostSent.text || Date.now() - this.hostSent.at >= HOST_FACTS_MS);
    if (this.sending || (queue.size === 0 && !stateDue && !hostDue) || (!final && Date.now() < this.nextAt)) return;
    const policy = this.o.policy();
    if (!policy && queue.size) return;
    this.sending = true;
    const extras = { ...(off ? { detectionOff: off } : {}), ...(host ? { host } : {}) };
    const envelope = reportEnvelopeBytes(this.o.node, policy) + Buffer.byteLength(JSON.stringify(extras));
    const batch = queue.take(this.budgetBytes - envelope);
    const report: Report = { node: this.o.node, policy, sources: batch, ...extras };
    const url = this.o.urls[this.urlIndex % this.o.urls.length]!;
    try {
      const [token] = await Promise.all([readFile(this.o.tokenFile, 'utf8').then((t) => t.trim()), this.trustCurrentCa()]);
      const body = JSON.stringify(report);
      const postedAt = process.hrtime.bigint();
      const { status, standby } = await this.post(url, token, body);
      // Counted until a report goes through: a leader's own 503s (overloaded) do not reset it.
      this.standbyHits = standby ? this.standbyHits + 1 : status === 200 ? 0 : this.standbyHits;
      if (status === 200) {
        // Stage timings (CLOCK_MONOTONIC ns) for the cluster bench; nothing is built unless debug is on.
        if (this.o.logger.isLevelEnabled('debug'))
          this.o.logger.debug({ sources: batch.map((b) => b.source), postedAtNs: String(postedAt), deliveredAtNs: String(process.hrtime.bigint()) }, 'report delivered');
        metrics.reportsSent.inc({ result: 'ok' });
        [this.sentOff, this.sentOffAt] = [off, Date.now()];
        if (host) this.hostSent = { text: hostText, at: Date.now() };
        this.backoffMs = 0;
        this.nextAt = 0;
        this.budgetBytes = Math.min(this.o.maxReportBytes ?? MAX_REPORT_BYTES, this.budgetBytes * 2);
      } else if ((status === 413 || status === 400) && batch.length > 1) {
        // Too large, or one source in it refused: send it again in halves, until a single
        // source is refused on its own; only that one is proven unsendable.
        queue.putBack(batch);
        metrics.reportsSent.inc({ result: 'retry' });
        this.budgetBytes = Math.max(MIN_REPORT_BYTES, Math.floor(Buffer.byteLength(body) / 2));
        this.o.logger.warn({ url, status, sources: batch.length, nextBytes: this.budgetBytes }, 'operator refused a report; sending it in smaller parts');
      } else if (status === 503 || status >= 500 || status === 401) {
        // Not the leader, overloaded, or a token the operator could not check yet: retry.
        queue.putBack(batch);
        metrics.reportsSent.inc({ result: 'retry' });
        if (standby && this.standbyHits <= STANDBY_RETRIES.fast) {
          this.urlIndex++;
          // Jittered: after a failover, the agents' retries do not arrive together.
          this.retryAt(Date.now() + STANDBY_RETRIES.delayMs * (0.5 + Math.random()));
        } else this.retryLater(`HTTP ${status}`, url, status === 503 ? 200 : undefined);
      } else {
        metrics.reportsSent.inc({ result: 'rejected' });
        this.o.logger.error({ url, status, sources: batch.map((b) => b.source) }, 'operator rejected a report; dropped');
      }
    } catch (err) {
      queue.putBack(batch);
      metrics.reportsSent.inc({ result: 'retry' });
      this.retryLater((err as Error).message, url);
    } finally {
      metrics.reportsDropped.inc(queue.dropped);
      queue.dropped = 0;
      metrics.reportQueue.set(queue.size);
      this.sending = false;
      if (this.promptWanted) {
        this.promptWanted = false;
        if (queue.size) this.newSource();
      }
    }
  }

  /** A new agent (new connections) when the CA file changed: the old one would keep trusting the old CA. */
  private async trustCurrentCa(): Promise<void> {
    if (!this.o.caFile) return;
    const ca = await readFile(this.o.caFile, 'utf8');
    if (ca === this.ca) return;
    if (this.ca !== undefined) this.o.logger.info({ caFile: this.o.caFile }, 'operator CA changed; trusting the new one');
    this.ca = ca;
    this.httpsAgent.destroy();
    this.httpsAgent = new HttpsAgent({ keepAlive: true, ca, ...this.lookup() });
  }

  private retryLater(why: string, url: string, firstMs?: number): void {
    this.urlIndex++;
    this.backoffMs = this.backoffMs ? Math.min(this.backoffMs * 2, MAX_BACKOFF_MS) : (firstMs ?? 250);
    this.retryAt(Date.now() + this.backoffMs);
    if (!this.stopped) this.o.logger.warn({ url, err: why, retryInMs: this.backoffMs }, 'report not delivered; will retry');
  }

  private retryAt(at: number): void {
    this.nextAt = at;
    clearTimeout(this.retryTimer);
    // A timer may fire a millisecond before Date.now() reaches its time, and tick() would wait for the next interval.
    if (!this.stopped) this.retryTimer = setTimeout(() => void this.tick(), Math.max(0, at - Date.now()) + 2);
  }

  private post(url: string, token: string, body: string): Promise<{ status: number; standby: boolean }> {
    const u = new URL(REPORT_PATH, url);
    const https = u.protocol === 'https:';
    const request = https ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = request(
        u,
        {
          method: 'POST',
          agent: https ? this.httpsAgent : this.httpAgent,
          timeout: 5000,
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
          },
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, standby: res.statusCode === 503 && res.headers[STANDBY_HEADER] === 'standby' }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
