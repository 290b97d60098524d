// The kernel fast path (response.kernelFastPath) against real scanners: the scanner is
// blocked by nftables at its first packet, which itself gets no answer, and the sentry
// logs and counts the detection afterwards from nflog.
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { SCANNER_V4, SCANNER_V6, TARGET_V4, TARGET_V6 } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';

const SERVICE_PORT = 8080;
const TOOLS = ['ip', 'nmap', 'hping3', 'nft'];
const FLOOD = fileURLToPath(new URL('../../support/spoof-flood.js', import.meta.url));

const policy = (spec: string) => `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: fast-path
spec:
  files: {history: "", blocked: ""}
${spec}`;

async function policyArgs(spec: string): Promise<string[]> {
  const file = join(await mkdtemp(join(tmpdir(), 'kps-policy-')), 'policy.yaml');
  await writeFile(file, policy(spec));
  return ['--policy', file, '--metrics-address', '127.0.0.1:9109'];
}

const FAST = `  tcp: {mode: stealth, ports: [1, 11]}
  udp: {mode: stealth, ports: [7]}
  response: {tcp: block, udp: block, firewall: nftables, kernelFastPath: true}
`;

describe('kernel fast path', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: TOOLS, servicePort: SERVICE_PORT });
  const ready = (t: TestContext) => hosts.ready(t);
  const nft = async (...args: string[]) => (await hosts.net.exec(hosts.net.target, ['nft', ...args])).stdout;
  const metrics = async () => {
    const script = "fetch('http://127.0.0.1:9109/metrics').then(r => r.text()).then(t => process.stdout.write(t))";
    return (await hosts.net.exec(hosts.net.target, [process.execPath, '-e', script])).stdout;
  };
  /** hping3 -c 1: the number of answers it got to its one packet. */
  const hping = async (...args: string[]) => {
    // It prints its statistics on stderr, and exits 1 when nothing answered.
    const r = await hosts.net
      .exec(hosts.net.scanner, ['hping3', '-c', '1', ...args, TARGET_V4])
      .catch((e: Error) => ({ stdout: '', stderr: e.message }));
    return Number(/(\d+) packets received/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? NaN);
  };

  test('IPv4: hping3 SYN to a tripwire port: no answer even to that packet, the scanner is blocked, the sentry logs and counts it', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start({ args: await policyArgs(FAST) });
    assert.ok(!sentry.lines.some((l) => l.msg === 'watching ports' && l.kernelFastPath !== true), 'no raw socket for a fast-path protocol');
    assert.equal(await hping('-S', '-p', '2'), 1, 'before: a closed port that is no tripwire answers (RST)');
    assert.equal(await hping('-S', '-p', '1'), 0, 'the first probe itself is dropped');
    assert.match(await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked4'), new RegExp(`elements = \\{ ${SCANNER_V4.replaceAll('.', '\\.')} timeout 1h`));
    assert.match(await nft('list', 'chain', 'inet', 'kube_portsentry', 'trap_block'), /counter packets 1 /, 'blocked at its first packet');
    const alert = await sentry.waitFor((l) => l.msg.startsWith('attackalert:'));
    assert.equal(alert.msg, `attackalert: TCP SYN/Normal scan from host: ${SCANNER_V4}/${SCANNER_V4} to TCP port: 1`);
    assert.deepEqual([alert.type, alert.mode, alert.blockedInKernel, alert.verified], ['syn', 'stealth', true, false]);
    await sentry.waitFor((l) => l.msg === 'scan detected: blocking' && l.source === SCANNER_V4);
    await sentry.waitFor((l) => l.msg === 'response in place' && l.blockedInKernel === true);
    assert.equal(await hping('-S', '-p', '2'), 0, 'after: the scanner gets no answer at all');
    const m = await metrics();
    assert.match(m, /^portsentry_probes_total\{protocol="tcp",mode="stealth",type="syn"\} 1$/m);
    assert.match(m, /^portsentry_scans_detected_total\{protocol="tcp"\} 1$/m);
    assert.match(m, /^portsentry_blocks_total\{scope="node",action="block"\} 1$/m);
    assert.equal(await hosts.stop(), 0);
    assert.doesNotMatch(await nft('list', 'tables'), /kube_portsentry/, 'shutdown with --flush-on-exit removes the table and its rules');
  });

  test('IPv6 nmap -sS and UDP are trapped the same way', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start({ args: await policyArgs(FAST) });
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-6', '-sS', '-Pn', '-n', '--max-retries', '0', '-p', '11', TARGET_V6]);
    const v6 = await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.source === SCANNER_V6);
    assert.deepEqual([v6.port, v6.type, v6.blockedInKernel], [11, 'syn', true]);
    assert.match(await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked6'), /2001:db8::1 timeout 1h/);
    assert.equal(await hping('--udp', '-p', '7'), 0, 'the UDP probe gets no answer (no ICMP port unreachable)');
    const udp = await sentry.waitFor((l) => l.msg.startsWith('attackalert: UDP scan') && l.source === SCANNER_V4);
    assert.deepEqual([udp.port, udp.protocol, udp.blockedInKernel], [7, 'udp', true]);
  });

  test('advanced mode: ports a real service uses, even one started later, are never trapped', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start({
      args: await policyArgs(`  tcp: {mode: advanced, advancedLimit: 65535}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, kernelFastPath: true}
`),
    });
    const late = await hosts.net.service(300);
    try {
      await new Promise((r) => setTimeout(r, 2500)); // a refresh of the ports in use, and of the sets
      assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open', 'a service running at start');
      assert.equal(await hosts.net.connect(TARGET_V4, 300), 'open', 'a service started later');
      assert.equal(await hping('-S', '-A', '-p', '3'), 1, 'an ACK is never a probe: it gets its RST');
      assert.deepEqual(sentry.lines.filter((l) => l.msg.startsWith('attackalert:')), []);
      assert.equal(await hping('-S', '-p', '400'), 0, 'any other port below the limit is a tripwire');
      await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.port === 400 && l.mode === 'advanced');
    } finally {
      late.kill();
    }
  });

  test('a tripwire port the host forwards to a service (a NodePort, a hostPort: DNAT) is the service\'s: its clients are never trapped', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start({
      args: await policyArgs(`  tcp: {mode: stealth, ports: [1, 11, 31337]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, kernelFastPath: true}
`),
    });
    // As kube-proxy and the portmap plugin do: the port is rewritten before the packet is routed.
    await hosts.net.exec(hosts.net.target, ['nft', '-f', '-'], { input: 'add table ip kps_test_nat\nadd chain ip kps_test_nat pre { type nat hook prerouting priority dstnat; }\nadd rule ip kps_test_nat pre tcp dport 31337 redirect to :8080\n' });
    try {
      assert.equal(await hosts.net.connect(TARGET_V4, 31337), 'open', 'the forwarded port answers its client');
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(sentry.lines.filter((l) => l.msg.startsWith('attackalert:')).map((l) => l.msg), []);
      assert.doesNotMatch(await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked4'), /elements/, 'the client was blocked');
      assert.equal(await hping('-S', '-p', '11'), 0, 'a tripwire port the host does not forward still traps');
    } finally {
      await nft('delete', 'table', 'ip', 'kps_test_nat');
    }
  });

  test('ignored sources are never trapped', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start({
      args: await policyArgs(`  tcp: {mode: advanced, advancedLimit: 65535}
  udp: {mode: "off"}
  ignore: ["198.18.0.0/30"]
  response: {tcp: block, firewall: nftables, kernelFastPath: true}
`),
    });
    assert.equal(await hping('-S', '-p', '1'), 1, 'an ignored source gets its RST');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(sentry.lines.filter((l) => l.msg.startsWith('attackalert:')), []);
    assert.doesNotMatch(await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked4'), /elements/);
  });

  test('during a flood of forged sources beyond maxBlocksPerMinute, a real scanner is still dropped at its first packet', async (t) => {
    if (!ready(t)) return;
    await hosts.start({
      args: await policyArgs(`  tcp: {mode: stealth, ports: [1, 11]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables, kernelFastPath: true, maxBlocksPerMinute: 60}
`),
    });
    // 300 forged sources, each sending again and again (5 s at 3,000 packets a second):
    // five times more sources than the limit, and packets all the time.
    const flood = hosts.net.exec(hosts.net.scanner, [process.execPath, FLOOD, '--target', TARGET_V4, '--port', '1', '--count', '300', '--rounds', '50', '--rate', '3000']);
    await new Promise((r) => setTimeout(r, 2500));
    const answered = await hping('-S', '-p', '11');
    const inSet = async () => (await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked4')).includes(`${SCANNER_V4} `);
    let blocked = await inSet();
    for (let i = 0; !blocked && i < 20; i++) {
      await new Promise((r) => setTimeout(r, 100));
      blocked = await inSet();
    }
    await flood;
    const forged = ((await nft('list', 'set', 'inet', 'kube_portsentry', 'blocked4')).match(/198\.19\.\d+\.\d+/g) ?? []).length;
    t.diagnostic(`scanner's first SYN answered: ${answered}; scanner in the set: ${blocked}; forged sources in the set: ${forged}`);
    assert.equal(answered, 0, 'the scanner\'s first packet got an answer');
    assert.ok(blocked, 'the scanner is not in the blocked set');
    assert.ok(forged <= 60 + 10, `${forged} forged sources blocked, beyond the limit`);
  });
});

