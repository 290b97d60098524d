// A flood of one-shot forged sources (a new random source with every packet) spends the
// block budget (response.maxBlocksPerMinute) of first-seen sources, and no more: a scanner
// whose source is proven (a completed handshake) has a budget of its own, and a scanner
// that comes back after a refusal (its second probe) finds the half kept for returning
// sources. In the engine (raw sockets and bind mode, the agent's path) and in the kernel
// fast path alike. The control: the forged sources themselves stay within the budget.
// Real sentry process, real nftables, real hping3 in test namespaces.
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { SCANNER_V4, TARGET_V4, connectFrom } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';

/** The default budget; the flood outruns its refill (one a second) fifty times over. */
const BUDGET = 60;

describe('a flood of one-shot forged sources does not blind the sentry to a real scanner', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: ['ip', 'hping3', 'nft'], servicePort: 8080 });
  const ready = (t: TestContext) => hosts.ready(t);
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kps-blinding-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const policy = async (name: string, spec: string) => {
    const file = join(dir, `${name}.yaml`);
    await writeFile(file, `apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nmetadata: {name: ${name}}\nspec:\n  files: {history: "", blocked: ""}\n${spec}`);
    return { args: ['--policy', file] };
  };
  /** Random forged sources, 50 a second for 5 s (the target's default route leads nowhere, so the answers die there). */
  const flood = (protocol: '--udp' | '-S', port: number) =>
    hosts.net.exec(hosts.net.scanner, ['hping3', protocol, '-p', String(port), '--rand-source', '-i', 'u20000', '-c', '250', TARGET_V4]).catch(() => undefined);
  const blocked4 = async () => (await hosts.net.exec(hosts.net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', 'blocked4'])).stdout;
  const count = (text: string) => (text.match(/\d+\.\d+\.\d+\.\d+/g) ?? []).length;

  test('engine: during the flood, a scanner that completes a handshake is blocked', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start(await policy('verified', `  tcp: {mode: bind, ports: [2001]}\n  udp: {mode: stealth, ports: [7001]}\n  trigger: {count: 0}\n  response: {tcp: block, udp: block, firewall: nftables}\n`));
    const flooding = flood('--udp', 7001);
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await connectFrom(hosts.net.scanner, { host: TARGET_V4, port: 2001, timeoutMs: 1500 }), 'open');
    const judged = await sentry.waitFor((l) => l.source === SCANNER_V4 && (l.msg === 'scan detected: blocking' || l.msg === 'scan detected'));
    await flooding;
    const forged = sentry.lines.filter((l) => l.msg === 'scan detected: blocking' && l.source !== SCANNER_V4).length;
    t.diagnostic(`the verified scanner: ${judged.msg}; forged sources blocked: ${forged}`);
    assert.equal(judged.msg, 'scan detected: blocking', 'the verified scanner was only alerted');
    assert.equal(await connectFrom(hosts.net.scanner, { host: TARGET_V4, port: 8080, timeoutMs: 1500 }), 'timeout', 'the scanner still reaches the service');
    assert.ok(forged <= BUDGET + 5, `${forged} forged sources blocked: beyond the budget`);
  });

  test('engine: during the flood, an unverified scanner is blocked at its second probe', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start(await policy('returning', `  tcp: {mode: stealth, ports: [1, 11]}\n  udp: {mode: stealth, ports: [7001]}\n  trigger: {count: 0}\n  response: {tcp: block, udp: block, firewall: nftables}\n`));
    const flooding = flood('--udp', 7001);
    await new Promise((r) => setTimeout(r, 2500));
    for (const port of [1, 11]) await hosts.net.exec(hosts.net.scanner, ['hping3', '-S', '-c', '1', '-p', String(port), TARGET_V4]).catch(() => undefined);
    const judged = await sentry.waitFor((l) => l.source === SCANNER_V4 && l.msg === 'scan detected: blocking', 5000).catch(() => undefined);
    await flooding;
    t.diagnostic(`the scanner: ${sentry.lines.filter((l) => l.source === SCANNER_V4 && l.msg.startsWith('scan detected')).map((l) => `${l.msg} (${String(l.reason ?? '')})`).join(', ')}`);
    assert.ok(judged, 'the returning scanner was not blocked');
    assert.equal(await connectFrom(hosts.net.scanner, { host: TARGET_V4, port: 8080, timeoutMs: 1500 }), 'timeout', 'the scanner still reaches the service');
    const forged = sentry.lines.filter((l) => l.msg === 'scan detected: blocking' && l.source !== SCANNER_V4).length;
    assert.ok(forged <= BUDGET + 5, `${forged} forged sources blocked: beyond the budget`);
  });

  test('kernel fast path: during the flood, a scanner is blocked at its second probe', async (t) => {
    if (!ready(t)) return;
    await hosts.start(await policy('fast', `  tcp: {mode: stealth, ports: [1, 11]}\n  udp: {mode: "off"}\n  trigger: {count: 0}\n  response: {tcp: block, firewall: nftables, kernelFastPath: true}\n`));
    const flooding = flood('-S', 1);
    await new Promise((r) => setTimeout(r, 2500));
    // The scanner's SYNs to two tripwire ports (hping3 from its own address).
    for (const port of [1, 11]) await hosts.net.exec(hosts.net.scanner, ['hping3', '-S', '-c', '1', '-p', String(port), TARGET_V4]).catch(() => undefined);
    await flooding;
    const set = await blocked4();
    t.diagnostic(`blocked4: ${count(set)} addresses; the scanner in it: ${set.includes(SCANNER_V4)}`);
    assert.ok(set.includes(SCANNER_V4), 'the scanner is not in the block set');
    assert.equal(await connectFrom(hosts.net.scanner, { host: TARGET_V4, port: 8080, timeoutMs: 1500 }), 'timeout', 'the scanner still reaches the service');
    assert.ok(count(set) <= BUDGET + 5, `${count(set)} sources blocked: beyond the budget`);
  });
});
