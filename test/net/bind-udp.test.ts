// Bind-mode UDP against forged datagrams, standalone (the agent runs the same sentry: see
// test/cluster/forged-cluster.test.ts). A UDP source can be forged and a datagram can be
// addressed to everyone, so the tripwire reads each datagram's destination and interface:
//  - one sent to the LAN broadcast address, or to ff02::1, is addressed to no host in
//    particular: counted as not-local, never a probe;
//  - one whose source would be answered by another interface than the one it came in on
//    (a source from the network behind the target's second interface, arriving on the
//    first) fails the reverse-path check: counted as spoofed, never blocked;
//  - the control: the same datagram, unicast to the target from a source that routes back,
//    is blocked.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';
import { SCANNER_V4, TARGET_V4 } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';

const TOOLS = ['ip', 'hping3', 'nft'];
const METRICS = '127.0.0.1:9109';
const PORT = 7001;
/** The network behind the target's second interface (a veth pair of its own, like a pod bridge): forged sources from it fail the check. */
const INSIDE = '10.99.0.1/24';
const INSIDE_SOURCE = '10.99.0.7';

function metric(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

describe('bind-mode UDP: what a datagram is addressed to, and where it came in', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: TOOLS, servicePort: 8080 });
  const ready = (t: TestContext) => hosts.ready(t);
  const scrape = async () =>
    (await hosts.net.exec(hosts.net.target, [process.execPath, '-e', `fetch('http://${METRICS}/metrics').then(r => r.text()).then(t => process.stdout.write(t))`])).stdout;
  const blocked = async () => (await hosts.net.exec(hosts.net.target, ['nft', 'list', 'table', 'inet', 'kube_portsentry'])).stdout;
  /** One datagram from the scanner's own address to `to` (broadcast and multicast allowed). */
  const send = async (to: string, v6 = false) => {
    const script = `const s = require('node:dgram').createSocket(${JSON.stringify(v6 ? 'udp6' : 'udp4')});
      s.bind(0, () => { ${v6 ? '' : 's.setBroadcast(true);'}
        s.send('x', ${PORT}, ${JSON.stringify(to)}, (e) => { if (e) { console.error(e.message); process.exit(1); } s.close(); }); });`;
    await hosts.net.exec(hosts.net.scanner, [process.execPath, '-e', script]);
  };

  test('broadcast and ff02::1 are no probe; a forged source from behind another interface is spoofed; a unicast datagram is blocked', async (t) => {
    if (!ready(t)) return;
    const net = hosts.net;
    const scannerDev = /^\d+: ([^:@]+)/.exec((await net.exec(net.scanner, ['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout)![1]!;
    await net.exec(net.target, ['sh', '-c', `ip link show kpsin >/dev/null 2>&1 || { ip link add kpsin type veth peer name kpsin2 && ip addr add ${INSIDE} dev kpsin && ip link set kpsin up && ip link set kpsin2 up; }`]);
    // The target takes forged sources in (no rp_filter), as many hosts' loose default does.
    for (const key of ['all', 'default']) await net.exec(net.target, ['sysctl', '-qw', `net.ipv4.conf.${key}.rp_filter=0`]);
    for (const dev of (await net.exec(net.target, ['ls', '/proc/sys/net/ipv4/conf'])).stdout.split('\n').filter(Boolean))
      await net.exec(net.target, ['sysctl', '-qw', `net.ipv4.conf.${dev}.rp_filter=0`]);
    const dir = await mkdtemp(join(tmpdir(), 'kps-bind-udp-'));
    const file = join(dir, 'policy.yaml');
    await writeFile(file, `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: bind-udp
spec:
  files: {history: "", blocked: ""}
  tcp: {mode: "off"}
  udp: {mode: bind, ports: [${PORT}]}
  trigger: {count: 0}
  response: {udp: block, firewall: nftables}
`);
    const sentry = await hosts.start({ args: ['--policy', file, '--metrics-address', METRICS, '--state-dir', join(dir, 'state')] });
    const notLocal = 'portsentry_packets_dropped_total{protocol="udp",reason="not-local"}';
    const spoofed = 'portsentry_probes_spoofed_total{protocol="udp"}';

    await send('198.18.0.255');
    await send(`ff02::1%${scannerDev}`, true);
    await new Promise((r) => setTimeout(r, 1000));
    let text = await scrape();
    t.diagnostic(`not-local: ${metric(text, notLocal)}`);
    assert.equal(metric(text, notLocal), 2, 'the broadcast and the all-nodes datagram are counted as not for this host');
    assert.ok(!sentry.lines.some((l) => l.msg.startsWith('attackalert:')), 'a datagram to everyone was a probe of this host');

    await net.exec(net.scanner, ['hping3', '--udp', '-c', '1', '-a', INSIDE_SOURCE, '-p', String(PORT), TARGET_V4]).catch(() => undefined);
    await sentry.waitFor((l) => l.msg.startsWith('probe with a forged source') && l.source === INSIDE_SOURCE);
    text = await scrape();
    assert.equal(metric(text, spoofed), 1);
    assert.ok(!(await blocked()).includes(INSIDE_SOURCE), 'the forged source was blocked');

    // The control: unicast, from a source that routes back the way it came.
    await send(TARGET_V4);
    await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
    assert.ok((await blocked()).includes(SCANNER_V4));
    assert.equal(metric(await scrape(), notLocal), 2);
    await hosts.stop();
    await net.exec(net.target, ['ip', 'link', 'del', 'kpsin']);
    await rm(dir, { recursive: true, force: true });
  });
});
