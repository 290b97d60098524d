// The admin commands as an operator of the host meets them: against the running sentry over
// its root-only socket, and from the record and the kernel when it is not running; bad input
// changes nothing; flush removes exactly what the sentry owns; --config and --defaults pick
// the files and modes as `run` does.
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { HOSTS_DENY_MARK } from '../../src/respond/hosts-deny-lines.js';
import { DEFAULT_INSTANCE, firewallNames } from '../../src/respond/firewall/owner.js';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { CLI, SentryProcess, adminIn } from '../../support/sentry-process.js';

const SERVICE_PORT = 8080;

interface Listed {
  running: boolean;
  blocks: { address: string; origin: string; reason: string; ports: string[]; until: number | null; expires: string | null }[];
}

test('admin commands: with the sentry running, then without it; flush removes exactly what it owns', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nft', 'setpriv'] })) return;
  const dir = await mkdtemp(join(tmpdir(), 'kps-admin-'));
  await chmod(dir, 0o755); // others may reach the socket's directory: the socket's own mode must keep them out
  const hostsDeny = join(dir, 'hosts.deny');
  // The admin's own line for the scanner, identical to the sentry's: never touched.
  await writeFile(hostsDeny, `# site\nALL: ${SCANNER_V4} : DENY\n`);
  const policy = join(dir, 'policy.yaml');
  await writeFile(
    policy,
    `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: admin}
spec:
  tcp: {mode: bind, ports: [1, 2, 3, ${SERVICE_PORT}]}
  udp: {mode: "off"}
  trigger: {count: 1}
  ignore: [127.0.0.0/8, 192.0.2.0/24]
  response: {tcp: block, firewall: nftables, route: {enabled: true}, hostsDeny: {enabled: true, path: ${hostsDeny}}}
  files: {history: "", blocked: ""}
`,
  );
  const net = await TestNet.create();
  const service = await net.service(SERVICE_PORT);
  const socket = join(dir, 'control.sock');
  const common = ['--policy', policy, '--state-dir', join(dir, 'state'), '--socket', socket];
  const admin = (...a: string[]) => adminIn(net, net.target, [...a, ...common]);
  const listed = async () => JSON.parse((await admin('blocks', '--json')).stdout) as Listed;
  const nft = async (set: string) => (await net.exec(net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', set])).stdout;
  let sentry: SentryProcess | undefined;
  try {
    sentry = await SentryProcess.start(net, { args: common });
    assert.equal((await stat(socket)).mode & 0o777, 0o600, 'the control socket is root\'s only');
    const nobody = await net
      .exec(net.target, ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', process.execPath, CLI, 'status', '--socket', socket])
      .then(() => 'answered', (e: Error) => e.message);
    assert.match(nobody, /permission denied \(the control socket is root's only\)/);

    // A detection: two tripwires, then the scanner is blocked.
    await net.connect(TARGET_V4, 1);
    await net.connect(TARGET_V4, 2);
    await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
    assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout');

    // Manual blocks: a network and an IPv6 host for an hour.
    assert.equal((await admin('block', '198.18.9.0/24', '--reason', 'abuse desk ticket 42')).code, 0);
    const v6 = await admin('block', '2001:db8:9::7', '--duration', '1h');
    assert.equal(v6.code, 0, v6.stderr);
    assert.match(v6.stdout, /^blocked 2001:db8:9::7 until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\n$/);
    const three = await listed();
    assert.equal(three.running, true);
    assert.deepEqual(
      three.blocks.map((b) => [b.address, b.origin, b.reason, b.ports, b.expires === null]),
      [
        [SCANNER_V4, 'detected', 'TCP connect', ['tcp/1', 'tcp/2'], false],
        ['198.18.9.0/24', 'manual', 'abuse desk ticket 42', [], true],
        ['2001:db8:9::7', 'manual', 'blocked by an admin', [], false],
      ],
    );
    const text = (await admin('blocks')).stdout;
    assert.match(text, /^ADDRESS +ORIGIN +REASON +PORTS +SINCE +EXPIRES\n/);
    assert.match(text, new RegExp(`${SCANNER_V4.replaceAll('.', '\\.')} +detected +TCP connect +tcp/1,tcp/2 `));

    // Bad input: a clear error, and nothing changes.
    const kernelBefore = [await nft('blocked4'), await nft('blockednet4'), await nft('blocked6')].join();
    const bad: [string[], number, RegExp][] = [
      [['block', '198.18.0.300'], 2, /"198\.18\.0\.300" is not an IP address or CIDR/],
      [['block', '198.18.9.1/16'], 2, /198\.18\.9\.1\/16 has host bits set: the network is 198\.18\.0\.0\/16/],
      [['block', '198.18.0.77', '--duration', 'soon'], 2, /--duration "soon" is not a duration/],
      [['block', '198.18.0.77', '--reason', 'two\nlines'], 2, /--reason holds a control character/],
      [['block', TARGET_V4], 1, new RegExp(`refusing to block: ${TARGET_V4.replaceAll('.', '\\.')} holds ${TARGET_V4.replaceAll('.', '\\.')}, an address of this host`)],
      [['block', '127.0.0.1'], 1, /refusing to block: 127\.0\.0\.1 holds 127\.0\.0\.1, an address of this host/],
      [['block', '192.0.0.0/16'], 1, /refusing to block: 192\.0\.0\.0\/16 overlaps 192\.0\.2\.0\/24 of the policy's ignore list/],
      [['unblock', '198.18.9.5'], 1, /198\.18\.9\.5 is inside 198\.18\.9\.0\/24, which is blocked as a whole: unblock 198\.18\.9\.0\/24/],
      [['unblock', 'scanner.example'], 2, /"scanner\.example" is not an IP address or CIDR/],
    ];
    for (const [args, code, message] of bad) {
      const r = await admin(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.deepEqual((await listed()).blocks.length, 3, 'the record is unchanged');
    assert.equal([await nft('blocked4'), await nft('blockednet4'), await nft('blocked6')].join().replace(/expires \S+/g, ''), kernelBefore.replace(/expires \S+/g, ''), 'the kernel is unchanged');

    // status: modes, ports watched and skipped as in use, tracked sources, blocks, detections.
    const status = JSON.parse((await admin('status', '--json')).stdout) as {
      running: boolean;
      status: { modes: Record<string, string>; watched: Record<string, number[]>; inUse: Record<string, number[]>; trackedSources: number; blocks: number; recent: { source: string; decision: string }[] };
    };
    assert.equal(status.running, true);
    assert.deepEqual([status.status.modes, status.status.watched.tcp, status.status.inUse.tcp], [{ tcp: 'bind', udp: 'off' }, [1, 2, 3], [SERVICE_PORT]]);
    assert.deepEqual([status.status.trackedSources, status.status.blocks], [1, 3]);
    assert.deepEqual(status.status.recent.map((d) => [d.source, d.decision]), [[SCANNER_V4, 'respond']]);
    assert.match((await admin('status')).stdout, new RegExp(`TCP: bind; watching 1,2,3; in use, skipped: ${SERVICE_PORT}\n`));

    // unblock lifts the block everywhere and resets the trigger: one more probe is not a scan.
    const lifted = await admin('unblock', SCANNER_V4);
    assert.equal(lifted.code, 0, lifted.stderr);
    assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'open', 'lifted');
    assert.doesNotMatch(await nft('blocked4'), new RegExp(SCANNER_V4.replaceAll('.', '\\.')));
    const lines = await readFile(hostsDeny, 'utf8');
    assert.ok(lines.startsWith(`# site\nALL: ${SCANNER_V4} : DENY\n`), 'the admin\'s line stayed');
    assert.doesNotMatch(lines, new RegExp(`${HOSTS_DENY_MARK}\nALL: ${SCANNER_V4.replaceAll('.', '\\.')} :`), 'the sentry\'s line went');
    assert.equal(await net.connect(TARGET_V4, 3), 'open', 'a tripwire');
    await sentry.waitFor((l) => l.port === 3 && l.decision === 'counted');
    assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'open', 'judged afresh: one probe is not enough');
    assert.equal(await net.connect(TARGET_V4, 1), 'open');
    await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4 && l.port === undefined && sentry!.lines.filter((m) => m.msg === 'response in place').length === 2);
    assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'blocked again after two probes');

    const refused = await admin('flush');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /the sentry is running .*: stop it first/);

    // Without the sentry: the record and the kernel.
    assert.equal(await sentry.stop(), 0);
    sentry = undefined;
    const down = await admin('blocks');
    assert.match(down.stderr, /the sentry is not running; the blocks of its record/);
    assert.match(down.stdout, /198\.18\.9\.0\/24 +manual/);
    const stopped = await admin('status');
    assert.equal(stopped.code, 3);
    assert.match(stopped.stdout, /^kube-portsentry: not running .*\nkernel: 3 entries in nftables table inet kube_portsentry\nblocks in its record: 3\n/);
    const offline = await admin('block', '198.18.0.50', '--duration', '1h');
    assert.equal(offline.code, 0, offline.stderr);
    assert.match(offline.stdout, /recorded for its next start/);
    assert.match(await nft('blocked4'), /198\.18\.0\.50 timeout 1h/);
    assert.equal((await admin('unblock', '198.18.9.0/24')).code, 0);
    assert.doesNotMatch(await nft('blockednet4'), /198\.18\.9\.0/);
    assert.doesNotMatch((await net.exec(net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout, /198\.18\.9\.0/);
    assert.deepEqual((await listed()).blocks.map((b) => b.address).sort(), [SCANNER_V4, '198.18.0.50', '2001:db8:9::7']);

    // flush: the table, the routes, the sentry's hosts.deny lines and the record; an agent's
    // table on the same host and the admin's line stay.
    const agent = firewallNames({ kind: 'agent', instance: DEFAULT_INSTANCE });
    await net.exec(net.target, ['nft', `add table inet ${agent.table}`]);
    await net.exec(net.target, ['nft', `add set inet ${agent.table} blocked4 { type ipv4_addr; }`]);
    await net.exec(net.target, ['nft', `add element inet ${agent.table} blocked4 { 198.18.0.99 }`]);
    await net.exec(net.target, ['ip', 'route', 'add', 'blackhole', '198.18.0.98/32']); // the admin's route
    const flushed = await admin('flush');
    assert.equal(flushed.code, 0, flushed.stderr);
    assert.match(flushed.stdout, /^flushed: 3 blocks lifted; removed nftables table inet kube_portsentry; record .*blocks\.json deleted\n$/);
    const tables = (await net.exec(net.target, ['nft', 'list', 'tables'])).stdout;
    assert.doesNotMatch(tables, /kube_portsentry\n/);
    assert.match(tables, new RegExp(agent.table));
    assert.equal((await net.exec(net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout.trim(), 'blackhole 198.18.0.98');
    assert.equal(await readFile(hostsDeny, 'utf8'), `# site\nALL: ${SCANNER_V4} : DENY\n`);
    await assert.rejects(stat(join(dir, 'state', 'blocks.json')), { code: 'ENOENT' });
    assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'open');

    // cleanup: the agent instance's objects, and nothing else.
    const cleaned = await adminIn(net, net.target, ['cleanup', '--instance', DEFAULT_INSTANCE]);
    assert.equal(cleaned.code, 0, cleaned.stderr);
    assert.match(cleaned.stdout, new RegExp(`removed nftables table inet ${agent.table}`));
    assert.doesNotMatch((await net.exec(net.target, ['nft', 'list', 'tables'])).stdout, /kube_portsentry/);
    assert.equal((await net.exec(net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout.trim(), 'blackhole 198.18.0.98');
  } finally {
    await sentry?.stop();
    service.kill();
    await net.destroy();
  }
});

test('--config and --defaults: run and the admin commands agree on the files; --flush-on-exit removes everything', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
  const dir = await mkdtemp(join(tmpdir(), 'kps-classic-admin-'));
  const conf = join(dir, 'portsentry.conf');
  await writeFile(
    conf,
    [
      'TCP_PORTS="1,11"',
      'UDP_PORTS="7"',
      `HISTORY_FILE="${dir}/lib/portsentry.history"`,
      `BLOCKED_FILE="${dir}/lib/portsentry.blocked"`,
      'BLOCK_TCP="1"',
      'BLOCK_UDP="0"',
      `KILL_HOSTS_DENY="ALL: $TARGET$ : DENY"`,
      'SCAN_TRIGGER="0"',
      '',
    ].join('\n'),
  );
  // Debian's /etc/default/portsentry, as its init script read it.
  const defaults = join(dir, 'portsentry.default');
  await writeFile(defaults, '# Debian\nTCP_MODE="tcp"\nUDP_MODE=""\n');
  const net = await TestNet.create();
  const socket = join(dir, 'control.sock');
  const args = ['--config', conf, '--defaults', defaults, '--socket', socket];
  let sentry: SentryProcess | undefined;
  try {
    sentry = await SentryProcess.start(net, { args: [...args, '--flush-on-exit'] }, [], { ownStateDir: false });
    assert.ok(sentry.find((l) => l.msg === 'sentry ready' && l.tcp === 'bind' && l.udp === 'off'), 'TCP_MODE="tcp", UDP_MODE empty');
    await net.connect(TARGET_V4, 11);
    await sentry.waitFor((l) => l.msg === 'response in place');
    // Without --socket the admin command would ask the default socket; the files come from --config.
    const record = JSON.parse(await readFile(join(dir, 'lib', 'blocks.json'), 'utf8')) as { blocks: { address: string }[] };
    assert.deepEqual(record.blocks.map((b) => b.address), [SCANNER_V4], 'the record is next to HISTORY_FILE');
    assert.equal(await sentry.stop(), 0);
    sentry = undefined;
    // --flush-on-exit: nothing of the sentry's is left.
    assert.doesNotMatch((await net.exec(net.target, ['nft', 'list', 'tables'])).stdout, /kube_portsentry/);
    await assert.rejects(stat(join(dir, 'lib', 'blocks.json')), { code: 'ENOENT' });
    const listed = await adminIn(net, net.target, ['blocks', '--json', ...args]);
    assert.deepEqual(JSON.parse(listed.stdout), { running: false, blocks: [] });
    // A bad defaults file is refused with its line.
    await writeFile(defaults, 'TCP_MODE="tcp"\nUDP_MODE="sctp"\n');
    const bad = await adminIn(net, net.target, ['blocks', ...args]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, new RegExp(`${defaults}:2: UDP_MODE: must be one of udp, sudp, audp, or empty`));
  } finally {
    await sentry?.stop();
    await net.destroy();
  }
});
