// Sends queued detections to the operator: batched, one request at a time, retried with
// capped backoff, rotating through the operator URLs on failure (a replica that is not the
// leader answers 503). The ServiceAccount token is read from its file for every request,
// since the kubelet rotates projected tokens.
import { readFile } from 'node:fs/promises';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import { REPORT_PATH, type Report, type ReportedHost } from '../k8s/report.js';
import type { ReportQueue } from './report-queue.js';

export interface ReporterOptions {
  urls: string[];
  /** PEM CA bundle that signs the operator's serving certificate. */
  ca?: string;
  tokenFile: string;
  /** How the operator URLs' host names are resolved (default: the system resolver). */
  lookup?: LookupFunction;
  node: string;
  policy: () => string | null;
  /** The node's facts the operator must protect too: sent with every report, and alone once a minute. */
  host?: () => ReportedHost;
  queue: ReportQueue;
  intervalMs: number;
  logger: Logger;
  metrics: Metrics;
}

const MAX_BACKOFF_MS = 10_000;
/** A report with no sources goes out this often, so the operator keeps the node's facts. */
const HOST_FACTS_MS = 60_000;

export class Reporter {
  private timer: NodeJS.Timeout | undefined;
  private sending = false;
  private backoffMs = 0;
  private nextAt = 0;
  private urlIndex = 0;
  private readonly httpsAgent: HttpsAgent;
  private readonly httpAgent: HttpAgent;
  private stopped = false;
  /** The host facts the operator last acknowledged, and when. */
  private hostSent = { text: '', at: 0 };

  constructor(private readonly o: ReporterOptions) {
    const lookup = o.lookup ? { lookup: o.lookup } : {};
    this.httpsAgent = new HttpsAgent({ keepAlive: true, ...lookup, ...(o.ca ? { ca: o.ca } : {}) });
    this.httpAgent = new HttpAgent({ keepAlive: true, ...lookup });
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.o.intervalMs);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    // One last try, so a clean shutdown loses nothing it could have sent.
    if (!this.sending) await this.tick(true);
    this.httpsAgent.destroy();
    this.httpAgent.destroy();
  }

  private async tick(final = false): Promise<void> {
    const { queue, metrics } = this.o;
    metrics.reportQueue.set(queue.size);
    const host = this.o.host?.();
    const hostText = host ? JSON.stringify(host) : '';
    const hostDue = !!host && (hostText !== this.hostSent.text || Date.now() - this.hostSent.at >= HOST_FACTS_MS);
    if (this.sending || (queue.size === 0 && !hostDue) || (!final && Date.now() < this.nextAt)) return;
    const policy = this.o.policy();
    if (!policy && queue.size) return;
    this.sending = true;
    const batch = queue.take();
    const report: Report = { node: this.o.node, policy, sources: batch, ...(host ? { host } : {}) };
    const url = this.o.urls[this.urlIndex % this.o.urls.length]!;
    try {
      const token = (await readFile(this.o.tokenFile, 'utf8')).trim();
      const status = await this.post(url, token, JSON.stringify(report));
      if (status === 200) {
        if (host) this.hostSent = { text: hostText, at: Date.now() };
        metrics.reportsSent.inc({ result: 'ok' });
        this.backoffMs = 0;
        this.nextAt = 0;
      } else if (status === 503 || status >= 500 || status === 401) {
        // Not the leader, overloaded, or a token the operator could not check yet: retry.
        queue.putBack(batch);
        metrics.reportsSent.inc({ result: 'retry' });
        this.retryLater(`HTTP ${status}`, url, status === 503 ? 200 : undefined);
      } else {
        metrics.reportsSent.inc({ result: 'rejected' });
        this.o.logger.error({ url, status, sources: batch.length }, 'operator rejected a report; dropped');
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
    }
  }

  private retryLater(why: string, url: string, firstMs?: number): void {
    this.urlIndex++;
    this.backoffMs = this.backoffMs ? Math.min(this.backoffMs * 2, MAX_BACKOFF_MS) : (firstMs ?? 250);
    this.nextAt = Date.now() + this.backoffMs;
    if (!this.stopped) this.o.logger.warn({ url, err: why, retryInMs: this.backoffMs }, 'report not delivered; will retry');
  }

  private post(url: string, token: string, body: string): Promise<number> {
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
          res.on('end', () => resolve(res.statusCode ?? 0));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('timed out')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
