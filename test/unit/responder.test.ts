// The responder's blocking actions against the in-memory Firewall: a detection's block is
// in the set for the policy's duration and tagged as detected, lifting takes it out, a
// command-only response leaves the set alone, and a firewall failure is counted, not thrown.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BlockRecord } from '../../src/engine/engine.js';
import { createLogger } from '../../src/log/logger.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { defaultPolicy } from '../../src/policy/default.js';
import { MemoryFirewall } from '../../src/respond/firewall/memory.js';
import { blockedOf, Responder } from '../../src/respond/responder.js';
import { addressOf } from '../../src/net/address.js';

const quiet = createLogger('fatal', 'test', 'json', new Writable({ write: (_c, _e, done) => done() }));

function responder(firewall: MemoryFirewall, metrics = new Metrics(false)): Responder {
  const spec = defaultPolicy().spec;
  return new Responder({
    response: { ...spec.response, route: { enabled: false, command: [] } },
    files: { history: '', blocked: '' },
    firewall,
    logger: quiet,
    metrics,
    routeMark: { metric: 4242 },
  });
}

const block = (over: Partial<BlockRecord> = {}): BlockRecord => ({
  source: addressOf('198.18.0.9')!,
  action: 'block',
  protocol: 'tcp',
  port: 79,
  mode: 'stealth',
  type: 'syn',
  verified: false,
  since: Date.now(),
  until: Date.now() + 3_600_000,
  ...over,
});

test('a block goes into the set for its duration, tagged detected, and lifting takes it out', async () => {
  const fw = new MemoryFirewall();
  await fw.setup();
  const r = responder(fw);
  assert.deepEqual(await r.respond(block()), [{ action: 'firewall', detail: 'memory' }]);
  const [entry] = await fw.list(4);
  assert.equal(entry?.target.text, '198.18.0.9');
  assert.equal(entry?.tag, 'detected');
  assert.ok(entry!.expiresInSeconds! > 3590 && entry!.expiresInSeconds! <= 3600, String(entry?.expiresInSeconds));
  await r.lift(blockedOf(block()));
  assert.equal(fw.blocks('198.18.0.9'), false);
});

test('a command-only response leaves the set alone; a failing firewall is counted, not thrown', async () => {
  const fw = new MemoryFirewall();
  const metrics = new Metrics(false);
  const r = responder(fw, metrics);
  assert.deepEqual(await r.respond(block({ action: 'command' })), []);
  assert.deepEqual(fw.calls, []);
  // Never set up: every addition fails.
  assert.deepEqual(await r.respond(block({ source: addressOf('2001:db8::9')! })), []);
  const errors = (await metrics.registry.getSingleMetricAsString('portsentry_action_errors_total')).match(/action="firewall"} (\d+)/)?.[1];
  assert.equal(errors, '1');
});

test('hosts.deny: an IPv6 source is written in brackets, as hosts_access(5) wants, and lifted', async () => {
  const path = join(await mkdtemp(join(tmpdir(), 'kps-hd-')), 'hosts.deny');
  await writeFile(path, '');
  const spec = defaultPolicy().spec;
  const response = { ...spec.response, route: { enabled: false, command: [] }, hostsDeny: { enabled: true, path, line: 'ALL: $TARGET$ : DENY' } };
  const r = new Responder({ response, files: { history: '', blocked: '' }, firewall: null, logger: quiet, metrics: new Metrics(false), routeMark: { metric: 4242 } });
  const b = block({ source: addressOf('2001:db8::7')! });
  await r.respond(b);
  const rules = async (): Promise<string[]> => (await readFile(path, 'utf8')).split('\n').filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(await rules(), ['ALL: [2001:db8::7] : DENY']);
  await r.lift(blockedOf(b));
  assert.deepEqual(await rules(), []);
});
