// Fuzzing what agents send the operator: parseReport (src/cluster/report.ts) and the report
// endpoint (src/operator/report-server.ts), a real HTTP server on loopback. Its token check
// is the Authenticator it is given (TokenReview in the operator; test/cluster runs that
// against a real API server); here one fixed token is accepted, so every request reaches
// the body handling. Malformed, oversize and slow bodies get a 4xx, never a throw or a 5xx.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { MAX_REPORT_BYTES, REPORT_PATH, parseReport, type Report } from '../../src/cluster/report.js';
import { OperatorMetrics } from '../../src/metrics/operator-metrics.js';
import { startReportServer } from '../../src/operator/report-server.js';
import { fuzz, mutatedText } from '../../support/fuzz.js';

const TOKEN = 'fuzz-token';
const AGENT = 'system:serviceaccount:kube-portsentry:agent';
/** Every message of parseReport names the body or the field at fault. */
const NAMED = /^(body is not JSON: |report: |node: |policy: |sources(\[\d+\](\.(source|probes|count|firstSeen|lastSeen|verified|blocked)(\[\d+\](\.(protocol|port|type|time))?)?)?)?: )/;

const valid: Report = {
  node: 'node-1',
  policy: 'edge',
  sources: [
    {
      source: '198.51.100.7',
      probes: [
        { protocol: 'tcp', port: 79, type: 'syn', time: 1_700_000_000_000 },
        { protocol: 'udp', port: 161, type: 'udp', time: 1_700_000_000_500 },
      ],
      count: 3,
      firstSeen: 1_700_000_000_000,
      lastSeen: 1_700_000_000_500,
      verified: false,
      blocked: true,
    },
    { source: '2001:db8::7', probes: [{ protocol: 'tcp', port: 1, type: 'connect', time: 1 }], count: 1, firstSeen: 1, lastSeen: 1, verified: true, blocked: false },
  ],
};
const CORPUS = [JSON.stringify(valid), JSON.stringify(valid, null, 2), JSON.stringify({ ...valid, sources: [] })];

/** What parseReport must do with `text`: return a report, or throw an Error naming the field. */
function parseOutcome(text: string): 'ok' | 'invalid' {
  try {
    const r = parseReport(text);
    assert.ok(typeof r.node === 'string' && Array.isArray(r.sources));
    return 'ok';
  } catch (err) {
    assert.ok(err instanceof Error && err.constructor === Error, `not a plain Error: ${(err as Error)?.stack ?? String(err)}`);
    assert.match(err.message, NAMED);
    return 'invalid';
  }
}

/** Random JSON shaped like a report, with wrong types, bounds and extra fields mixed in. */
const nearReport = fc.record(
  {
    node: fc.oneof(fc.constant('node-1'), fc.string({ maxLength: 300 }), fc.anything({ maxDepth: 1 })),
    policy: fc.oneof(fc.constant('edge'), fc.string(), fc.integer()),
    sources: fc.oneof(
      fc.array(
        fc.record(
          {
            source: fc.oneof(fc.constantFrom('198.51.100.7', '::ffff:1.2.3.4', '2001:db8::1%eth0', '1.2.3', '1.2.3.4/24', '', '0'.repeat(65)), fc.ipV4(), fc.ipV6(), fc.string()),
            probes: fc.oneof(fc.array(fc.record({ protocol: fc.constantFrom('tcp', 'udp', 'icmp', 1), port: fc.oneof(fc.integer({ min: -1, max: 65536 }), fc.double()), type: fc.constantFrom('syn', 'udp', 'connect', 'SYN', '', 'x'.repeat(17)), time: fc.oneof(fc.nat(), fc.constantFrom(-1, 8.64e15 + 1, Infinity)) }, { requiredKeys: [] }), { maxLength: 4 }), fc.constant(Array.from({ length: 257 }, () => ({ protocol: 'tcp', port: 1, type: 'syn', time: 1 })))),
            count: fc.oneof(fc.nat(), fc.constantFrom(-1, 2 ** 53, 0.5)),
            firstSeen: fc.nat(),
            lastSeen: fc.nat(),
            verified: fc.oneof(fc.boolean(), fc.constantFrom(0, 'true', null)),
            blocked: fc.boolean(),
          },
          { requiredKeys: [] },
        ),
        { maxLength: 3 },
      ),
      fc.anything({ maxDepth: 2 }),
    ),
    ['__proto__']: fc.constant({ node: 'polluted' }),
  },
  { requiredKeys: [] },
).map((r) => JSON.stringify(r));

describe('fuzz: agent reports', { concurrency: false }, () => {
  test('parseReport: random, near-valid and mutated bodies give a report or an error naming the field', async () => {
    const deep = fc.integer({ min: 1000, max: 200_000 }).map((n) => '['.repeat(n) + ']'.repeat(n));
    await fuzz('parseReport', fc.oneof(mutatedText(CORPUS), nearReport, fc.string(), fc.string({ unit: 'binary' }), deep), (text) => void parseOutcome(text));
  });

  describe('the report endpoint', () => {
    let server: Server;
    let port: number;
    const accepted: Report[] = [];
    const metrics = new OperatorMetrics(false);
    before(async () => {
      server = await startReportServer({
        address: '127.0.0.1:0',
        authenticate: async (token) => (token === TOKEN ? { username: AGENT } : null),
        // Fuzzed reports name any node: the token here is bound to none.
        allowUnboundTokens: true,
        allowedUser: AGENT,
        isLeader: () => true,
        // Async: the operator acknowledges a report once it is applied.
        accept: async (r) => {
          accepted.push(r);
        },
        logger: pino({ level: 'silent' }),
        metrics,
        timeouts: { headersMs: 1000, requestMs: 1500 },
      });
      port = (server.address() as AddressInfo).port;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** POSTs `body` (in chunks, when given a list); resolves with the status, or the socket error. */
    function post(body: string | Buffer | (string | Buffer)[], headers: Record<string, string | number> = {}): Promise<{ status?: number; error?: string; text: string }> {
      return new Promise((resolve) => {
        const req = request({ host: '127.0.0.1', port, method: 'POST', path: REPORT_PATH, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...headers } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
          res.on('error', () => resolve({ status: res.statusCode!, text }));
        });
        req.on('error', (err) => resolve({ error: (err as NodeJS.ErrnoException).code ?? err.message, text: '' }));
        for (const chunk of Array.isArray(body) ? body : [body]) req.write(chunk);
        req.end();
      });
    }

    test('random and mutated bodies: 200 exactly when parseReport accepts, else 400 with the reason', async () => {
      await fuzz('report endpoint', fc.oneof(mutatedText(CORPUS), nearReport, fc.string({ unit: 'binary' })), async (text) => {
        const expected = parseOutcome(text) === 'ok' ? 200 : 400;
        const r = await post(text);
        assert.equal(r.status, expected, `${JSON.stringify(r)} for ${text.slice(0, 200)}`);
        if (expected === 400) assert.match((JSON.parse(r.text) as { error: string }).error, NAMED);
      }, { minRuns: 20 });
    });

    test('oversize bodies get 413, declared or not, and the server stays up', async () => {
      const big = Buffer.alloc(MAX_REPORT_BYTES + 1, 0x20);
      const declared = await post(big);
      assert.equal(declared.status, 413, JSON.stringify(declared));
      // Chunked, no length given: the server counts as it reads, answers 413 and stops reading.
      const chunked = await post(Array.from({ length: 40 }, () => Buffer.alloc(64 * 1024, 0x20)), { 'transfer-encoding': 'chunked' });
      assert.equal(chunked.status, 413, JSON.stringify(chunked));
      // A declared length that lies low: the parser refuses the extra bytes.
      const lying = await post('{"node":"n"}', { 'content-length': 3 });
      assert.ok(lying.status === 400, JSON.stringify(lying));
      assert.equal((await post(JSON.stringify(valid))).status, 200, 'still serving');
    });

    test('slow bodies and slow headers time out with 408, never hang the server', async () => {
      const slow = async (head: string): Promise<string> => {
        const socket = connect(port, '127.0.0.1');
        let answer = '';
        socket.on('data', (d) => (answer += d.toString()));
        socket.on('error', () => undefined);
        socket.write(head);
        // Trickle a byte every 200 ms: never finishing, always alive.
        const trickle = setInterval(() => socket.write(' '), 200);
        await new Promise<void>((resolve) => socket.on('close', () => resolve()));
        clearInterval(trickle);
        return answer;
      };
      const started = Date.now();
      const [body, headers] = await Promise.all([
        slow(`POST ${REPORT_PATH} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${TOKEN}\r\ncontent-length: 100000\r\n\r\n{`),
        slow(`POST ${REPORT_PATH} HTTP/1.1\r\nhost: x\r\nx-slow: `),
      ]);
      assert.match(body, /^HTTP\/1\.1 408 /, `slow body: ${JSON.stringify(body.slice(0, 100))}`);
      assert.match(headers, /^HTTP\/1\.1 408 /, `slow headers: ${JSON.stringify(headers.slice(0, 100))}`);
      assert.ok(Date.now() - started < 10_000, 'both cut off within the configured time');
      assert.equal((await post(JSON.stringify(valid))).status, 200, 'still serving');
    });

    test('the counts add up: every request is counted by result', async () => {
      const values = (await metrics.reportsReceived.get()).values;
      const by = Object.fromEntries(values.map((v) => [v.labels.result, v.value]));
      assert.ok((by.ok ?? 0) >= 3 && (by.invalid ?? 0) >= 3, JSON.stringify(by));
      assert.equal(by.error, undefined, 'no request ended in a 500');
      assert.equal(accepted.length, by.ok);
    });
  });
});
