// A probe's way from a detector to its response (src/sentry/probe-handler.ts), without
// sockets or root: the engine decides, the responder blocks in the in-memory Firewall, the
// block goes into the record and the history file, and the lines and metrics follow.
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { RecordFile } from '../../src/sentry/record-file.js';
import type { ReversePath } from '../../src/detect/reverse-path.js';
import { Engine, engineConfig } from '../../src/engine/engine.js';
import type { Probe } from '../../src/engine/probe.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { addressOf } from '../../src/net/address.js';
import { compilePolicy } from '../../src/policy/compiled.js';
import { defaultPolicy } from '../../src/policy/default.js';
import type { PolicySpec } from '../../src/policy/types.js';
import { MemoryFirewall } from '../../src/respond/firewall/memory.js';
import { firewallNames } from '../../src/respond/firewall/owner.js';
import { Responder } from '../../src/respond/responder.js';
import { HostBlocks } from '../../src/sentry/host-blocks.js';
import { ProbeHandler, type ProbeHandlerOptions } from '../../src/sentry/probe-handler.js';
import { statePaths } from '../../src/sentry/state-paths.js';

/** Routes back for every source but the ones named forged. */
class FixedReversePath implements ReversePath {
  constructor(private readonly forged: string[] = []) {}
  routesBack(source: string): boolean {
    return !this.forged.includes(source);
  }
  close(): void {}
}

interface Setup {
  handler: ProbeHandler;
  firewall: MemoryFirewall;
  metrics: Metrics;
  lines: { msg: string; source?: string }[];
  history: string;
  record: string;
}

/** The standalone sentry's pieces over the in-memory Firewall, with files in a directory of their own. */
async function setup(over: (spec: PolicySpec) => PolicySpec = (s) => s, options: { forged?: string[]; standalone?: boolean; onDecision?: ProbeHandlerOptions['onDecision'] } = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-probe-'));
  const base = defaultPolicy().spec;
  const spec = over({ ...base, ignore: ['192.0.2.0/24'], files: { history: join(dir, 'portsentry.history'), blocked: '' } });
  const policy = compilePolicy('t', spec);
  const lines: Setup['lines'] = [];
  const logger = createLogger('info', 'test', 'json', new Writable({ write: (chunk, _e, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  const metrics = new Metrics(false);
  const firewall = new MemoryFirewall();
  await firewall.setup();
  const engine = new Engine(engineConfig(policy));
  engine.setOwnAddresses(['198.18.0.2']);
  const paths = statePaths(spec.files);
  const names = firewallNames({ kind: 'standalone', stateDir: paths.dir });
  const responder = new Responder({ response: spec.response, files: spec.files, firewall, logger, metrics, routeMark: { metric: names.routeMetric }, lockDir: paths.dir });
  await responder.start();
  let record: HostBlocks | null = null;
  if (options.standalone !== false) {
    record = new HostBlocks({ response: spec.response, paths, names, firewall, responder, engine, logger, metrics });
    await record.load();
  }
  const handler = new ProbeHandler({ engine, responder, reversePath: new FixedReversePath(options.forged), record, fastPath: () => null, logger, metrics, ...(options.onDecision ? { onDecision: options.onDecision } : {}) });
  return { handler, firewall, metrics, lines, history: spec.files.history, record: paths.record };
}

const probe = (source: string, port: number, over: Partial<Probe> = {}): Probe => ({
  time: Date.now(),
  protocol: 'tcp',
  mode: 'stealth',
  source: addressOf(source)!,
  port,
  type: 'syn',
  verified: false,
  ifindex: 2,
  destination: '198.18.0.2',
  ...over,
});

const metric = async (metrics: Metrics, name: string): Promise<string> => metrics.registry.getSingleMetricAsString(name);

test('a scan is blocked in the firewall, recorded, written to the history, counted, and said once as already blocked', async () => {
  const s = await setup();
  s.handler.handle(probe('203.0.113.9', 79));
  await s.handler.settled();
  assert.ok(s.firewall.blocks('203.0.113.9'));
  assert.deepEqual(s.firewall.calls, ['setup', 'add 203.0.113.9']);
  assert.equal((await s.firewall.list(4))[0]?.tag, 'detected');
  const recorded = await new RecordFile(s.record).load();
  assert.deepEqual(recorded.map((e) => [e.target.text, e.origin, e.reason, e.ports]), [['203.0.113.9', 'detected', 'TCP SYN/Normal scan', ['tcp/79']]]);
  assert.match(await readFile(s.history, 'utf8'), /203\.0\.113\.9\/203\.0\.113\.9 Port: 79 TCP Blocked/);
  assert.ok(s.lines.some((l) => l.msg === 'attackalert: TCP SYN/Normal scan from host: 203.0.113.9/203.0.113.9 to TCP port: 79'));
  assert.ok(s.lines.some((l) => l.msg === 'scan detected: blocking' && l.source === '203.0.113.9'));
  assert.ok(s.lines.some((l) => l.msg === 'response in place'));
  assert.match(await metric(s.metrics, 'portsentry_blocks_total'), /action="block",scope="node"} 1|scope="node",action="block"} 1/);
  assert.match(await metric(s.metrics, 'portsentry_blocked_hosts'), / 1$/m);
  assert.deepEqual(s.handler.recent.map((r) => [r.source, r.decision, r.action]), [['203.0.113.9', 'respond', 'block']]);

  // Its next probes: no second addition, one "already blocked" line, however many come.
  s.handler.handle(probe('203.0.113.9', 80));
  s.handler.handle(probe('203.0.113.9', 81));
  await s.handler.settled();
  assert.deepEqual(s.firewall.calls, ['setup', 'add 203.0.113.9']);
  assert.equal(s.lines.filter((l) => /is already blocked Ignoring/.test(l.msg)).length, 1);
  // Lifted: the next "already blocked" is said again.
  s.handler.forget('203.0.113.9');
  s.handler.handle(probe('203.0.113.9', 82));
  await s.handler.settled();
  assert.equal(s.lines.filter((l) => /is already blocked Ignoring/.test(l.msg)).length, 2);
});

test('an ignored source, the host\'s own address and a forged source are never blocked', async () => {
  const s = await setup(undefined, { forged: ['203.0.113.66'] });
  s.handler.handle(probe('192.0.2.7', 79));
  s.handler.handle(probe('198.18.0.2', 79));
  s.handler.handle(probe('203.0.113.66', 79));
  await s.handler.settled();
  assert.deepEqual(s.firewall.calls, ['setup']);
  const ignored = await metric(s.metrics, 'portsentry_probes_ignored_total');
  assert.match(ignored, /reason="ignore-list"} 1/);
  assert.match(ignored, /reason="own-address"} 1/);
  assert.match(await metric(s.metrics, 'portsentry_probes_spoofed_total'), /protocol="tcp"} 1/);
  assert.ok(s.lines.some((l) => /forged source/.test(l.msg) && l.source === '203.0.113.66'));
  // A verified probe (a completed handshake) is never taken for forged.
  s.handler.handle(probe('203.0.113.66', 79, { mode: 'bind', type: 'connect', verified: true }));
  await s.handler.settled();
  assert.ok(s.firewall.blocks('203.0.113.66'));
});

test('an alert-only policy counts and says the scan, and leaves the firewall alone', async () => {
  const s = await setup((spec) => ({ ...spec, response: { ...spec.response, tcp: 'alert' } }));
  s.handler.handle(probe('203.0.113.10', 79));
  await s.handler.settled();
  assert.deepEqual(s.firewall.calls, ['setup']);
  assert.ok(s.lines.some((l) => l.msg === 'scan detected' && l.source === '203.0.113.10'));
  assert.match(await metric(s.metrics, 'portsentry_alerts_total'), /} 1$/m);
  assert.deepEqual(s.handler.recent.map((r) => r.decision), ['alert']);
});

test('in the agent (no record) every decision not ignored is passed on, and a block still reaches the firewall', async () => {
  const seen: string[] = [];
  const s = await setup(undefined, { standalone: false, onDecision: (p, d) => seen.push(`${p.source.text} ${d.kind}`) });
  const handler = s.handler;
  handler.handle(probe('203.0.113.11', 79));
  handler.handle(probe('192.0.2.8', 79));
  handler.handle(probe('203.0.113.11', 80));
  await handler.settled();
  assert.deepEqual(seen, ['203.0.113.11 respond', '203.0.113.11 suppressed']);
  assert.ok(s.firewall.blocks('203.0.113.11'));
  assert.match(await metric(s.metrics, 'portsentry_blocked_hosts'), / 1$/m);
});
