// The standalone sentry as a host service across restarts: a kill -9 or a SIGTERM, then a
// start, never lets a blocked scanner through (a prober tries all along, the gap included),
// a block that expired during the downtime is lifted at the start (kernel, route, hosts.deny,
// record), and what the kernel fast path blocked while the sentry was down is kept.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ADOPTED_REASON } from '../../src/blocks/reconcile.js';
import { HOSTS_DENY_MARK } from '../../src/respond/hosts-deny-lines.js';
import { SCANNER_V4, TARGET_V4, TestNet, connectFrom } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { startProber } from '../../support/prober.js';
import { SentryProcess, adminIn } from '../../support/sentry-process.js';

const SERVICE_PORT = 8080;
/** A second scanner address: its block is short and runs out while the sentry is down. */
const SHORT_LIVED = '198.18.0.3';

interface Listed {
  running: boolean;
  blocks: { address: string; origin: string; reason: string; until: number | null; ports: string[] }[];
}

async function setup(spec: string): Promise<{ dir: string; policy: string; net: TestNet }> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-restart-'));
  const policy = join(dir, 'policy.yaml');
  await writeFile(
    policy,
    `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: restart}
spec:
${spec}  files: {history: ${dir}/state/portsentry.history, blocked: ${dir}/state/portsentry.blocked}
`,
  );
  const net = await TestNet.create();
  await net.addScannerAddress(SHORT_LIVED);
  return { dir, policy, net };
}

for (const signal of ['SIGKILL', 'SIGTERM'] as const) {
  test(`${signal} then a start: the scanner stays blocked throughout, an expiry during the downtime is honoured`, async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const hostsDeny = join(await mkdtemp(join(tmpdir(), 'kps-hd-')), 'hosts.deny');
    const { dir, policy, net } = await setup(`  tcp: {mode: bind, ports: [79]}
  udp: {mode: "off"}
  response:
    tcp: block
    duration: 1h
    firewall: nftables
    route: {enabled: true}
    hostsDeny: {enabled: true, path: ${hostsDeny}}
`);
    const service = await net.service(SERVICE_PORT);
    const socket = join(dir, 'control.sock');
    // No --state-dir: the record goes next to the history file, where the admin commands look.
    const args = ['--policy', policy, '--socket', socket];
    const admin = (...a: string[]) => adminIn(net, net.target, [...a, ...args]);
    const start = () => SentryProcess.start(net, { args: [...args] }, [], { ownStateDir: false });
    const blackholes = async () => (await net.exec(net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout;
    let sentry: SentryProcess | undefined;
    let prober: ReturnType<typeof startProber> | undefined;
    try {
      sentry = await start();
      const history = await readFile(join(dir, 'state', 'portsentry.history'), 'utf8');
      assert.equal(history, '', 'the history file exists from the start, for fail2ban');
      assert.equal(await net.connect(TARGET_V4, 79), 'open', 'the tripwire');
      await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
      const manual = await admin('block', SHORT_LIVED, '--duration', '4s', '--reason', 'short');
      assert.equal(manual.code, 0, manual.stderr);
      const blockedAt = Date.now();
      assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'the scanner is blocked');
      assert.equal(await connectFrom(net.scanner, { host: TARGET_V4, port: SERVICE_PORT, timeoutMs: 1000, localAddress: SHORT_LIVED }), 'timeout');
      const before = JSON.parse((await admin('blocks', '--json')).stdout) as Listed;
      assert.equal(before.running, true);
      assert.deepEqual(before.blocks.map((b) => [b.address, b.origin]), [[SCANNER_V4, 'detected'], [SHORT_LIVED, 'manual']]);
      const until = before.blocks[0]!.until;

      prober = startProber(net.scanner, { host: TARGET_V4, port: SERVICE_PORT });
      await new Promise((r) => setTimeout(r, 500));
      sentry.child.kill(signal);
      const code = await sentry.exited;
      if (signal === 'SIGTERM') {
        assert.equal(code, 0);
        assert.ok(sentry.find((l) => l.msg.startsWith('sentry stopped; blocks left in place')));
      }
      // The gap: the sentry is down; its table, route and line stay, and the short block runs out.
      const down = JSON.parse((await admin('blocks', '--json')).stdout) as Listed;
      assert.equal(down.running, false, 'the record answers while the sentry is down');
      assert.equal(down.blocks.length, 2);
      assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'probed during the gap: still blocked');
      await new Promise((r) => setTimeout(r, Math.max(0, blockedAt + 5000 - Date.now())));
      assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'probed during the gap, later: still blocked');

      sentry = await start();
      const reconciled = await sentry.waitFor((l) => l.msg === 'blocks from the record reconciled');
      assert.deepEqual([reconciled.kept, reconciled.lifted], [1, 1]);
      assert.ok(sentry.find((l) => l.msg === 'block expired while the sentry was stopped: lifted' && l.source === SHORT_LIVED));
      await new Promise((r) => setTimeout(r, 500));
      const counts = await prober.stop();
      prober = undefined;
      assert.ok(counts.timeout >= 10, `probes all along: ${JSON.stringify(counts)}`);
      assert.deepEqual([counts.open, counts.refused], [0, 0], `no probe answered across the restart: ${JSON.stringify(counts)}`);

      assert.equal(await net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'still blocked after the start');
      assert.equal(await connectFrom(net.scanner, { host: TARGET_V4, port: SERVICE_PORT, timeoutMs: 1000, localAddress: SHORT_LIVED }), 'open', 'the expired block is lifted');
      const after = JSON.parse((await admin('blocks', '--json')).stdout) as Listed;
      assert.deepEqual(after.blocks.map((b) => [b.address, b.until]), [[SCANNER_V4, until]], 'kept with its remaining time');
      const element = (await net.exec(net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', 'blocked4'])).stdout;
      assert.match(element, new RegExp(`${SCANNER_V4.replaceAll('.', '\\.')} timeout 1h expires (59m|58m)`), 'the kernel entry kept its own timeout');
      assert.doesNotMatch(element, new RegExp(SHORT_LIVED.replaceAll('.', '\\.')));
      const routes = await blackholes();
      assert.match(routes, new RegExp(`blackhole ${SCANNER_V4.replaceAll('.', '\\.')} proto 157`));
      assert.doesNotMatch(routes, new RegExp(SHORT_LIVED.replaceAll('.', '\\.')));
      assert.equal(await readFile(hostsDeny, 'utf8'), `${HOSTS_DENY_MARK}\nALL: ${SCANNER_V4} : DENY\n`);
      const record = JSON.parse(await readFile(join(dir, 'state', 'blocks.json'), 'utf8')) as { blocks: { address: string }[] };
      assert.deepEqual(record.blocks.map((b) => b.address), [SCANNER_V4]);
    } finally {
      await prober?.stop().catch(() => undefined);
      await sentry?.stop();
      service.kill();
      await net.destroy();
    }
  });
}

test('kernel fast path: what the kernel blocked while the sentry was down is kept at the next start', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nft', 'hping3'] })) return;
  const { dir, policy, net } = await setup(`  tcp: {mode: stealth, ports: [1]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, kernelFastPath: true}
`);
  const args = ['--policy', policy, '--socket', join(dir, 'control.sock')];
  const hping = (from: string) =>
    net.exec(net.scanner, ['hping3', '-c', '1', '-S', '-p', '1', '-a', from, TARGET_V4]).then(
      (r) => r.stdout + r.stderr,
      (e: Error) => e.message,
    );
  let sentry: SentryProcess | undefined;
  try {
    sentry = await SentryProcess.start(net, { args }, [], { ownStateDir: false });
    assert.match(await hping(SCANNER_V4), /0 packets received/);
    await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
    assert.equal(await sentry.stop(), 0);
    // Down: the trap rules stay in the kernel and still block a new scanner at its first packet.
    assert.match(await hping(SHORT_LIVED), /0 packets received/);
    sentry = await SentryProcess.start(net, { args }, [], { ownStateDir: false });
    const reconciled = await sentry.waitFor((l) => l.msg === 'blocks from the record reconciled');
    assert.deepEqual([reconciled.kept, reconciled.adopted], [1, [SHORT_LIVED]]);
    const listed = JSON.parse((await adminIn(net, net.target, ['blocks', '--json', ...args])).stdout) as Listed;
    assert.deepEqual(
      listed.blocks.map((b) => [b.address, b.origin, b.address === SHORT_LIVED ? b.reason : '']),
      [[SCANNER_V4, 'detected', ''], [SHORT_LIVED, 'detected', ADOPTED_REASON]],
    );
    assert.match(await hping(SCANNER_V4), /0 packets received/, 'both still blocked');
    assert.match(await hping(SHORT_LIVED), /0 packets received/);
  } finally {
    await sentry?.stop();
    await net.destroy();
  }
});
