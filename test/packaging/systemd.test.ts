// The systemd unit in packaging/systemd: systemd-analyze finds nothing to say about it, rates
// its exposure 3.0 or lower, and the unit is hardened the way the README says. Offline
// checks: this machine need not run systemd as init. The sentry is also run within the
// unit's file system and capability limits, set up by hand.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { capabilityMask, privilegesOf, withPrivileges } from '../../support/privilege.js';
import { CLI, SentryProcess, adminIn } from '../../support/sentry-process.js';

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

test('the sentry within the unit\'s limits (simulated: a read-only file system but its files, the three capabilities) detects, blocks and answers', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nft', 'unshare', 'mount', 'capsh'] })) return;
  const state = await mkdtemp(join(tmpdir(), 'kps-unit-state-'));
  const etc = await mkdtemp(join(tmpdir(), 'kps-unit-etc-'));
  const hostsDeny = join(etc, 'hosts.deny');
  await writeFile(hostsDeny, '# site\n');
  const policy = join(state, 'policy.yaml');
  await writeFile(
    policy,
    `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: unit}
spec:
  tcp: {mode: bind, ports: [79]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, route: {enabled: true}, hostsDeny: {enabled: true, path: ${hostsDeny}}}
  files: {history: ${state}/portsentry.history, blocked: ${state}/portsentry.blocked}
`,
  );
  // As the unit sets it up: ProtectSystem=strict (everything read-only), StateDirectory= (the
  // files directory writable), ReadWritePaths=/etc/hosts.deny (the file alone), and the
  // capability bounding set. System call filters are systemd's own and not simulated.
  const setup = [
    'mount --rbind / /',
    'mount -o remount,bind,ro /',
    'mount --bind "$1" "$1"',
    'mount -o remount,bind,rw "$1"',
    'mount --bind "$2" "$2"',
    'mount -o remount,bind,rw "$2"',
    'shift 2',
    'exec "$@"',
  ].join(' && ');
  const caps = ['NET_RAW', 'NET_ADMIN', 'NET_BIND_SERVICE'];
  const command = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', setup, 'sh', state, hostsDeny, ...withPrivileges([process.execPath, CLI], { capabilities: caps })];
  const net = await TestNet.create();
  let sentry: SentryProcess | undefined;
  try {
    sentry = await SentryProcess.start(net, { args: ['--policy', policy, '--socket', join(state, 'control.sock')] }, [], { ownStateDir: false, command });
    const held = await privilegesOf(sentry.child.pid!);
    assert.equal(held.effective, capabilityMask(caps));
    assert.equal(held.bounding, capabilityMask(caps));
    assert.equal(await net.connect(TARGET_V4, 79), 'open');
    const done = await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
    assert.deepEqual((done.done as string[]).map((d) => d.split(' ')[0]), ['firewall', 'route', 'hosts-deny']);
    const manual = await adminIn(net, net.target, ['block', '198.18.0.77', '--duration', '1h', '--policy', policy, '--socket', join(state, 'control.sock')]);
    assert.equal(manual.code, 0, manual.stderr);
    assert.equal(await sentry.stop(), 0);
    assert.deepEqual(sentry.lines.filter((l) => l.level === 'error' || l.level === 'fatal'), [], 'no action failed for want of a writable path or a capability');
    assert.match(await readFile(hostsDeny, 'utf8'), new RegExp(`^# site\n.*\nALL: ${SCANNER_V4.replaceAll('.', '\\.')} : DENY\n`));
    assert.match((await net.exec(net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', 'blocked4'])).stdout, /198\.18\.0\.1 .*198\.18\.0\.77/s);
  } finally {
    await sentry?.stop();
    await net.destroy();
  }
});
