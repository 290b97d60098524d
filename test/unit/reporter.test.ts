// The agent's reporter against the operator's real report endpoint on loopback (its token
// check swapped for one that takes the test's token, as tests may): a new source's first
// report goes at once, not at the next interval; and a flood of fresh (forgeable) sources
// stays within the prompt budget, the rest going in the interval's batches; a report the
// Service sent to the standby replica goes again soon.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ReportQueue } from '../../src/agent/report-queue.js';
import { PROMPT_REPORTS, Reporter } from '../../src/agent/reporter.js';
import type { Report } from '../../src/cluster/report.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import { startReportServer } from '../../src/operator/report-server.js';
import { formatIp } from '../../src/net/ip.js';

const logger = createLogger('silent');
const USER = 'system:serviceaccount:kps:agent';
const probe = (time: number) => ({ protocol: 'tcp' as const, port: 1, type: 'syn', time });
const fresh = (i: number) => formatIp(Uint8Array.from([10, (i >> 16) & 255, (i >> 8) & 255, i & 255]));

async function withReporter(
  intervalMs: number,
  fn: (h: { queue: ReportQueue; received: Report[]; reporter: Reporter }) => Promise<void>,
  isLeader: () => boolean = () => true,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-reporter-'));
  const received: Report[] = [];
  let server: Server | undefined;
  let reporter: Reporter | undefined;
  try {
    server = await startReportServer({
      address: '127.0.0.1:0',
      authenticate: async (token) => (token === 'agent-token' ? { username: USER } : null),
      allowedUser: USER,
      allowUnboundTokens: true,
      isLeader,
      accept: async (r) => void received.push(r),
      logger,
      metrics: new OperatorMetrics(),
    });
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'agent-token');
    const queue = new ReportQueue(100_000);
    reporter = new Reporter({
      urls: [`http://127.0.0.1:${(server.address() as { port: number }).port}`],
      tokenFile,
      node: 'node-1',
      policy: () => 'default',
      queue,
      intervalMs,
      logger,
      metrics: new Metrics(false),
    });
    reporter.start();
    await fn({ queue, received, reporter });
  } finally {
    await reporter?.stop();
    server?.close();
    server?.closeAllConnections();
    await rm(dir, { recursive: true, force: true });
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 10_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !ok(); await new Promise((r) => setTimeout(r, 10)))
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
}

const sent = (received: Report[]) => new Set(received.flatMap((r) => r.sources.map((s) => s.source)));

test("a new source's first report goes at once, not at the next interval", async () => {
  // An interval far longer than the wait below: only the prompt path can deliver in time.
  await withReporter(60_000, async ({ queue, received }) => {
    // Blocked on the node at its first probe (trigger 0), as a scanner is.
    queue.add('198.51.100.7', probe(Date.now()), false, true);
    await until('the first report', () => sent(received).has('198.51.100.7'), 5_000);
    // A source already queued or sent adds no request of its own: a second new source goes promptly too.
    queue.add('198.51.100.8', probe(Date.now()), true, false);
    await until('the second source', () => sent(received).has('198.51.100.8'), 5_000);
  });
});

test('a flood of fresh sources costs at most the prompt budget in requests; the rest goes in batches at the interval', async () => {
  await withReporter(200, async ({ queue, received }) => {
    const t0 = Date.now();
    // Fresh sources for a second and a half (20,000 at most), one per turn of the event loop, as a reader
    // hands them over: each request that ends finds new ones waiting.
    let sources = 0;
    while (Date.now() - t0 < 1500 && sources < 20_000) {
      queue.add(fresh(sources++), probe(Date.now()), false, true);
      await new Promise((r) => setImmediate(r));
    }
    await until('every source delivered', () => sent(received).size === sources, 30_000);
    const elapsedS = (Date.now() - t0) / 1000;
    // Requests: the prompt budget (a burst, then its rate) plus one per interval tick.
    const bound = PROMPT_REPORTS.burst + PROMPT_REPORTS.perSecond * elapsedS + elapsedS / 0.2 + 2;
    assert.ok(received.length <= bound, `${received.length} requests for ${sources} fresh sources in ${elapsedS.toFixed(2)} s; at most ${bound.toFixed(0)} allowed`);
    assert.ok(received.length < sources / 100, `${received.length} requests: the flood was not batched`);
  });
});

test('a report the Service sent to the standby replica goes again soon, not after a backoff that doubles each time', async () => {
  // The Service picks a replica per connection; here the standby answers six times in a row
  // (1 chance in 64 with two replicas), as it did on the real cluster.
  let asked = 0;
  await withReporter(60_000, async ({ queue, received }) => {
    const t0 = Date.now();
    queue.add('198.51.100.9', probe(Date.now()), true, true);
    // A doubling backoff from 200 ms waits 12.6 s before the seventh try.
    await until('the report, past six answers of the standby', () => sent(received).has('198.51.100.9'), 3_000);
    assert.equal(asked, 7);
    process.stdout.write(`# delivered ${Date.now() - t0} ms after six standby answers\n`);
  }, () => ++asked > 6);
});
