// Bind mode against real scanners: nmap from a scanner namespace, the sentry in a target
// namespace, real nftables / iptables+ipset / routes inside that namespace.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { HOSTS_DENY_MARK } from '../../src/respond/hosts-deny-lines.js';
import { SCANNER_V4, SCANNER_V6, TARGET_V4, TARGET_V6, TestNet } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';
import { SentryProcess, type LogLine } from '../../support/sentry-process.js';

const SERVICE_PORT = 8080;
const TOOLS = ['ip', 'nmap', 'nft', 'iptables', 'ip6tables', 'ipset'];

async function policy(spec: string): Promise<{ yaml: string; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-files-'));
  const yaml = `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: test
spec:
  files:
    history: ${dir}/history
    blocked: ${dir}/blocked
${spec}`;
  return { yaml, dir };
}

async function writePolicy(yaml: string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'kps-policy-')), 'policy.yaml');
  await writeFile(file, yaml);
  return file;
}

/** A probe's attackalert lines (not the "is already blocked" line of a blocked source's later probe). */
const probeLines = (s: SentryProcess, protocol: string) =>
  s.lines.filter((l) => l.msg.startsWith('attackalert:') && !l.msg.endsWith('is already blocked Ignoring') && l.protocol === protocol);

async function nftSet(net: TestNet, set: 'blocked4' | 'blocked6'): Promise<string> {
  return (await net.exec(net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', set])).stdout;
}

describe('bind mode with real scanners', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: TOOLS, servicePort: SERVICE_PORT });
  const ready = (t: TestContext) => hosts.ready(t);
  const stopSentry = () => hosts.stop();

  test('nmap -sT is detected, blocked in nftables, and clean shutdown removes the table', async (t) => {
    if (!ready(t)) return;
    const { yaml, dir } = await policy(`  tcp:
    ports: [1, 11, 15, 79, 111, "5000-5002"]
  udp:
    mode: "off"
  response:
    tcp: block
    firewall: nftables
`);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open');
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,11,15,79,111', TARGET_V4]);
    const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
    assert.equal(block.source, SCANNER_V4);
    assert.equal(block.verified, true);
    assert.ok([1, 11, 15, 79, 111].includes(block.port as number));
    await sentry.waitFor((l) => l.msg === 'response in place');
    for (const l of probeLines(sentry, 'tcp')) {
      assert.ok([1, 11, 15, 79, 111].includes(l.port as number), `unexpected port ${l.port}`);
      assert.equal(l.type, 'connect');
      assert.match(l.msg, new RegExp(`^attackalert: Connect from host: ${SCANNER_V4}/${SCANNER_V4} to TCP port: \\d+$`));
    }
    assert.match(await nftSet(hosts.net, 'blocked4'), new RegExp(`elements = \\{ ${SCANNER_V4.replaceAll('.', '\\.')} (timeout|expires)`));
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'timeout', 'the scanner is dropped on a real open port');
    const history = await readFile(`${dir}/history`, 'utf8');
    assert.match(history, new RegExp(`Host: ${SCANNER_V4}/${SCANNER_V4} Port: \\d+ TCP Blocked\\n$`));
    assert.equal(await readFile(`${dir}/blocked.tcp`, 'utf8'), history);

    // The suite's sentries run with --flush-on-exit (the old behaviour; by default blocks stay).
    assert.equal(await stopSentry(), 0);
    const tables = (await hosts.net.exec(hosts.net.target, ['nft', 'list', 'tables'])).stdout;
    assert.doesNotMatch(tables, /kube_portsentry/);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open', 'shutdown with --flush-on-exit lifts the block');
  });

  test('nmap -sU is detected with the right ports and blocked', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    mode: "off"
  udp:
    ports: [7, 9, 69, 161]
  response:
    udp: block
    firewall: nftables
`);
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sU', '-Pn', '-n', '-p', '7,9,69,161', TARGET_V4]);
    const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
    assert.equal(block.protocol, 'udp');
    assert.equal(block.verified, false);
    await sentry.waitFor((l) => l.msg === 'response in place');
    const ports = new Set(probeLines(sentry, 'udp').map((l) => l.port));
    assert.ok(ports.size >= 1 && [...ports].every((p) => [7, 9, 69, 161].includes(p as number)), [...ports].join());
    assert.match(await nftSet(hosts.net, 'blocked4'), new RegExp(SCANNER_V4.replaceAll('.', '\\.')));
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'timeout');
    assert.equal(await stopSentry(), 0);
  });

  test('IPv6: nmap -6 -sT is detected and blocked in the v6 set', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [1, 79, 111]
  udp:
    mode: "off"
  response:
    firewall: nftables
`);
    const sentry = await hosts.start(yaml);
    assert.equal(await hosts.net.connect(TARGET_V6, SERVICE_PORT), 'open');
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-6', '-sT', '-Pn', '-n', '-p', '1,79,111', TARGET_V6]);
    const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
    assert.equal(block.source, SCANNER_V6);
    await sentry.waitFor((l) => l.msg === 'response in place');
    assert.match(await nftSet(hosts.net, 'blocked6'), /2001:db8::1/);
    assert.equal(await hosts.net.connect(TARGET_V6, SERVICE_PORT), 'timeout');
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open', 'only the scanning address is blocked');
    assert.equal(await stopSentry(), 0);
  });

  test('trigger 2 with iptables+ipset: one probe does not block, three do; shutdown removes chain and sets', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [1, 11, 15, 79]
  udp:
    mode: "off"
  trigger:
    count: 2
  response:
    firewall: iptables
`);
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1', TARGET_V4]);
    await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.port === 1);
    assert.equal(sentry.find((l) => l.msg === 'scan detected: blocking'), undefined);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open', 'one probe does not block');
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '11,15,79', TARGET_V4]);
    const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
    assert.equal((block.ports as string[]).length, 3);
    await sentry.waitFor((l) => l.msg === 'response in place');
    const members = (await hosts.net.exec(hosts.net.target, ['ipset', 'list', 'kube-portsentry-v4'])).stdout;
    assert.match(members, new RegExp(`${SCANNER_V4.replaceAll('.', '\\.')} timeout`));
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'timeout');
    assert.equal(await stopSentry(), 0);
    const raw = (await hosts.net.exec(hosts.net.target, ['iptables', '-t', 'raw', '-S'])).stdout;
    assert.doesNotMatch(raw, /KUBE-PORTSENTRY/);
    const sets = (await hosts.net.exec(hosts.net.target, ['ipset', 'list', '-n'])).stdout;
    assert.doesNotMatch(sets, /kube-portsentry/);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open');
  });

  test('an ignored CIDR is never blocked', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [1, 11, 15]
  udp:
    mode: "off"
  ignore: ["198.18.0.0/28", "2001:db8::/64"]
  response:
    firewall: nftables
`);
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,11,15', TARGET_V4]);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-6', '-sT', '-Pn', '-n', '-p', '1,11,15', TARGET_V6]);
    const ignored = await sentry.waitFor((l) => l.msg === 'probe from ignored source' && l.source === SCANNER_V6);
    assert.equal(ignored.reason, 'ignore-list');
    assert.ok(sentry.find((l) => l.msg === 'probe from ignored source' && l.source === SCANNER_V4));
    assert.equal(sentry.find((l) => l.msg === 'scan detected: blocking'), undefined);
    assert.doesNotMatch(await nftSet(hosts.net, 'blocked4'), /elements/);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open');
    assert.equal(await stopSentry(), 0);
  });

  test('a real service on a tripwire port is not watched or reported', async (t) => {
    if (!ready(t)) return;
    const real = await hosts.net.service(79);
    try {
      const { yaml } = await policy(`  tcp:
    ports: [1, 79]
  udp:
    mode: "off"
  trigger:
    count: 5
  response:
    firewall: nftables
`);
      const sentry = await hosts.start(yaml);
      const skipped = sentry.find((l) => l.msg === 'ports used by a real service are not watched');
      assert.deepEqual(skipped?.ports, [79]);
      assert.deepEqual(sentry.find((l) => l.msg === 'watching ports')?.ports, [1]);
      const out = (await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,79', TARGET_V4])).stdout;
      assert.match(out, /79\/tcp\s+open/);
      await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.port === 1);
      assert.equal(probeLines(sentry, 'tcp').filter((l) => l.port === 79).length, 0);
      assert.equal(await stopSentry(), 0);
    } finally {
      real.kill();
    }
  });

  test('a block expires after its duration and traffic flows again', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [1]
  udp:
    mode: "off"
  response:
    duration: 3s
    firewall: nftables
`);
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1', TARGET_V4]);
    await sentry.waitFor((l) => l.msg === 'response in place');
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT, 500), 'timeout');
    await sentry.waitFor((l) => l.msg === 'block expired: lifting', 8000);
    await new Promise((r) => setTimeout(r, 300));
    assert.doesNotMatch(await nftSet(hosts.net, 'blocked4'), /elements/);
    assert.equal(await hosts.net.connect(TARGET_V4, SERVICE_PORT), 'open');
    assert.equal(await stopSentry(), 0);
  });

  test('hundreds of tripwire ports (no 64-socket limit)', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: ["20000-20299"]
  udp:
    ports: ["20000-20299"]
  response:
    firewall: nftables
`);
    const sentry = await hosts.start(yaml);
    const watching = sentry.lines.filter((l) => l.msg === 'watching ports');
    assert.deepEqual(watching.map((l) => [l.protocol, (l.ports as number[]).length]), [['tcp', 300], ['udp', 300]]);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '20299', TARGET_V4]);
    const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
    assert.equal(block.port, 20299);
    assert.equal(await stopSentry(), 0);
  });

  test('route, hosts.deny and command responses, run without a shell', async (t) => {
    if (!ready(t)) return;
    const dir = await mkdtemp(join(tmpdir(), 'kps-actions-'));
    const { yaml } = await policy(`  tcp:
    ports: [1]
  udp:
    mode: "off"
  response:
    firewall: none
    duration: 3s
    route:
      enabled: true
    hostsDeny:
      enabled: true
      path: ${dir}/hosts.deny
    command: ["${process.execPath}", "-e", "require('fs').appendFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)) + '\\\\n')", "${dir}/cmd.log", "$TARGET$", "$PORT$", "$MODE$", "; echo $TARGET$ && reboot"]
`);
    const sentry = await hosts.start(yaml);
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1', TARGET_V4]);
    await sentry.waitFor((l) => l.msg === 'response in place');
    const routes = (await hosts.net.exec(hosts.net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout;
    assert.match(routes, new RegExp(`blackhole ${SCANNER_V4.replaceAll('.', '\\.')}`));
    assert.equal(await readFile(`${dir}/hosts.deny`, 'utf8'), `${HOSTS_DENY_MARK}\nALL: ${SCANNER_V4} : DENY\n`);
    assert.deepEqual(JSON.parse((await readFile(`${dir}/cmd.log`, 'utf8')).trim()), [
      SCANNER_V4, '1', 'tcp', `; echo ${SCANNER_V4} && reboot`,
    ]);
    await sentry.waitFor((l: LogLine) => l.msg === 'block expired: lifting', 8000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await hosts.net.exec(hosts.net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout.trim(), '');
    assert.equal(await readFile(`${dir}/hosts.deny`, 'utf8'), '');
    assert.equal(await stopSentry(), 0);
  });

  test('a failing action is logged and counted, the other actions and the sentry go on; /metrics shows it', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [1, 11]
  udp:
    mode: "off"
  response:
    firewall: nftables
    command: ["/nonexistent/kps-notify", "$TARGET$"]
`);
    const sentry = await hosts.start({
      args: ['--policy', await writePolicy(yaml), '--metrics-address', '127.0.0.1:9109'],
    });
    await hosts.net.exec(hosts.net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '1,11', TARGET_V4]);
    const failed = await sentry.waitFor((l) => l.msg === 'action failed');
    assert.equal(failed.action, 'command');
    assert.match(String(failed.err), /kps-notify/);
    await sentry.waitFor((l) => l.msg === 'response in place');
    assert.match(await nftSet(hosts.net, 'blocked4'), new RegExp(SCANNER_V4.replaceAll('.', '\\.')));
    const fetchScript = "fetch('http://127.0.0.1:9109/metrics').then(r => r.text()).then(t => process.stdout.write(t))";
    const metrics = (await hosts.net.exec(hosts.net.target, [process.execPath, '-e', fetchScript])).stdout;
    assert.match(metrics, /^portsentry_action_errors_total\{action="command"\} 1$/m);
    assert.match(metrics, /^portsentry_blocks_total\{scope="node",action="block"\} 1$/m);
    assert.match(metrics, /^portsentry_probes_total\{protocol="tcp",mode="bind",type="connect"\} [12]$/m);
    assert.match(metrics, /^portsentry_blocked_hosts 1$/m);
    assert.doesNotMatch(metrics, /198\.18\./, 'no address is ever a label');
    const health = "fetch('http://127.0.0.1:9109/readyz').then(r => process.stdout.write(String(r.status)))";
    assert.equal((await hosts.net.exec(hosts.net.target, [process.execPath, '-e', health])).stdout, '200');
    assert.equal(await stopSentry(), 0);
  });

  test('the banner is sent to a tripwire connection before it is closed', async (t) => {
    if (!ready(t)) return;
    const { yaml } = await policy(`  tcp:
    ports: [79]
  udp:
    mode: "off"
  trigger:
    count: 5
  response:
    firewall: none
    banner: "** UNAUTHORIZED ACCESS PROHIBITED ** GO AWAY."
`);
    const sentry = await hosts.start(yaml);
    const script = `const s = require('node:net').connect(79, ${JSON.stringify(TARGET_V4)}); let got = '';
      s.on('data', (d) => (got += d)); s.on('close', () => console.log(JSON.stringify(got)));`;
    const { stdout } = await hosts.net.exec(hosts.net.scanner, [process.execPath, '-e', script]);
    assert.equal(JSON.parse(stdout.trim()), '** UNAUTHORIZED ACCESS PROHIBITED ** GO AWAY.\n');
    await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.port === 79);
  });
});
