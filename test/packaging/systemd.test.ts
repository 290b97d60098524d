// The systemd unit in packaging/systemd: systemd-analyze finds nothing to say about it, rates
// its exposure 3.0 or lower, and the unit is hardened the way the README says. Offline
// checks: this machine need not run systemd as init.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { prerequisites } from '../helpers/prereq.js';
import { CLI } from '../helpers/sentry-process.js';

const UNIT = fileURLToPath(new URL('../../../packaging/systemd/kube-portsentry.service', import.meta.url));
const DEFAULTS = fileURLToPath(new URL('../../../packaging/systemd/kube-portsentry.default', import.meta.url));

function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(argv[0]!, argv.slice(1), { timeout: 60_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The unit's settings, key to values, in order. */
async function settings(): Promise<Map<string, string[]>> {
  const map = new Map<string, string[]>();
  for (const line of (await readFile(UNIT, 'utf8')).split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) map.set(m[1]!, [...(map.get(m[1]!) ?? []), m[2]!]);
  }
  return map;
}

test('systemd-analyze verify has nothing to say about the unit', async (t) => {
  if (!prerequisites(t, { tools: ['systemd-analyze'] })) return;
  const r = await run(['systemd-analyze', 'verify', UNIT]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('systemd-analyze security --offline rates the unit 3.0 or lower', async (t) => {
  if (!prerequisites(t, { tools: ['systemd-analyze'] })) return;
  const r = await run(['systemd-analyze', 'security', '--offline=true', '--threshold=30', UNIT]);
  assert.equal(r.code, 0, `over the threshold:\n${r.stdout}${r.stderr}`);
  const level = Number(/Overall exposure level for kube-portsentry\.service: (\d+\.\d)/.exec(r.stdout)?.[1]);
  assert.ok(level <= 3.0, `exposure ${level}`);
  t.diagnostic(`exposure level ${level.toFixed(1)}`);
});

test('the unit: bounded capabilities, no new privileges, a read-only system but the files directory', async () => {
  const s = await settings();
  assert.deepEqual(s.get('CapabilityBoundingSet'), ['CAP_NET_RAW CAP_NET_ADMIN CAP_NET_BIND_SERVICE']);
  for (const [key, value] of [
    ['NoNewPrivileges', 'yes'],
    ['ProtectSystem', 'strict'],
    ['StateDirectory', 'kube-portsentry'],
    ['RuntimeDirectory', 'kube-portsentry'],
    ['RuntimeDirectoryMode', '0700'],
    ['RestrictNamespaces', 'yes'],
    ['RestrictAddressFamilies', 'AF_UNIX AF_INET AF_INET6 AF_NETLINK'],
  ])
    assert.deepEqual(s.get(key!), [value], key);
  assert.ok(s.get('SystemCallFilter')!.length >= 2, 'system calls restricted');
  assert.deepEqual(s.get('ExecStart'), ['/usr/bin/env kube-portsentry run $KUBE_PORTSENTRY_OPTS']);
  assert.deepEqual(s.get('EnvironmentFile'), ['-/etc/default/kube-portsentry']);
  assert.equal(s.get('ReadWritePaths'), undefined, 'nothing else writable unless the admin adds it');
});

test('the sample environment file: each example uses only options run takes', async () => {
  const usage = (await run([process.execPath, CLI, 'run', '--help'])).stdout;
  const lines = (await readFile(DEFAULTS, 'utf8')).split('\n');
  const active = lines.filter((l) => l && !l.startsWith('#'));
  assert.deepEqual(active, ['KUBE_PORTSENTRY_OPTS=""'], 'the bundled default policy unless edited');
  const examples = lines.filter((l) => l.startsWith('#KUBE_PORTSENTRY_OPTS='));
  assert.ok(examples.length >= 3);
  for (const example of examples) {
    const flags = /"(.*)"/.exec(example)![1]!.split(' ').filter((w) => w.startsWith('--'));
    for (const flag of flags) assert.ok(usage.includes(flag), `${flag} (in ${example}) is an option of run`);
  }
});
