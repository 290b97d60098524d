// Stealth and advanced modes against real scanners (nmap, hping3) in test namespaces,
// IPv4 and IPv6.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test, type TestContext } from 'node:test';
import { SCANNER_V4, SCANNER_V6, TARGET_V4, TARGET_V6 } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';
import { SentryProcess, type LogLine } from '../../support/sentry-process.js';

const TOOLS = ['ip', 'nmap', 'hping3', 'nft'];
const FORGE = fileURLToPath(new URL('../../support/forge-syn.js', import.meta.url));
const SERVICE_PORT = 8080;

const header = `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata:
  name: stealth-test
spec:
  files: {history: "", blocked: ""}
`;

/** A probe's attackalert lines (not the "is already blocked" line of a blocked source's later probe). */
const probes = (s: SentryProcess): LogLine[] => s.lines.filter((l) => l.msg.startsWith('attackalert:') && !l.msg.endsWith('is already blocked Ignoring'));
const settle = () => new Promise((r) => setTimeout(r, 500));

describe('stealth and advanced modes with real scanners', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: TOOLS, servicePort: SERVICE_PORT });
  const ready = (t: TestContext) => hosts.ready(t);

  // Alert only, and a trigger no scan reaches, so every probe is logged with its type.
  const watchOnly = `  tcp: {mode: stealth, ports: [1, 11, 79]}
  udp: {mode: stealth, ports: [7, 9]}
  trigger: {count: 255}
  response: {tcp: alert, udp: alert, firewall: none}
`;

  for (const [family, target, scanner] of [
    ['IPv4', TARGET_V4, SCANNER_V4],
    ['IPv6', TARGET_V6, SCANNER_V6],
  ] as const) {
    test(`${family}: nmap -sS -sF -sN -sX -sU are detected with their type and ports`, async (t) => {
      if (!ready(t)) return;
      const sentry = await hosts.start(header + watchOnly);
      const v6 = family === 'IPv6' ? ['-6'] : [];
      const expected: [string, string, string][] = [
        ['-sS', 'syn', '1,11,80'],
        ['-sF', 'fin', '1,11,80'],
        ['-sN', 'null', '1,11,80'],
        ['-sX', 'xmas', '1,11,80'],
        ['-sU', 'udp', '7,9,53'],
      ];
      for (const [flag, type, ports] of expected) {
        await hosts.net.exec(hosts.net.scanner, ['nmap', ...v6, flag, '-Pn', '-n', '--max-retries', '0', '-p', ports, target]);
        await sentry.waitFor((l) => l.type === type && l.source === scanner);
      }
      await settle();
      const seen = probes(sentry);
      for (const [, type] of expected) {
        const ports = new Set(seen.filter((l) => l.type === type).map((l) => l.port));
        const want = type === 'udp' ? [7, 9] : [1, 11];
        assert.deepEqual([...ports].sort((a, b) => Number(a) - Number(b)), want, `${type} ports`);
      }
      assert.ok(seen.every((l) => l.source === scanner && l.verified === false && l.mode === 'stealth'));
      assert.ok(seen.some((l) => l.msg === `attackalert: TCP SYN/Normal scan from host: ${scanner}/${scanner} to TCP port: 1`));
      assert.ok(!seen.some((l) => l.port === 80 || l.port === 53), 'unwatched ports are not reported');
    });

    test(`${family}: with block, the scanner's next probe gets no answer`, async (t) => {
      if (!ready(t)) return;
      const sentry = await hosts.start(
        header +
          `  tcp: {mode: stealth, ports: [1, 11]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables}
`,
      );
      const v6 = family === 'IPv6' ? ['-6'] : [];
      const before = (await hosts.net.exec(hosts.net.scanner, ['nmap', ...v6, '-sS', '-Pn', '-n', '-p', '2', target])).stdout;
      assert.match(before, /2\/tcp\s+closed/, 'an unwatched closed port answers with RST');
      await hosts.net.exec(hosts.net.scanner, ['nmap', ...v6, '-sS', '-Pn', '-n', '-p', '1', target]);
      const block = await sentry.waitFor((l) => l.msg === 'scan detected: blocking');
      assert.deepEqual([block.source, block.type, block.mode], [scanner, 'syn', 'stealth']);
      await sentry.waitFor((l) => l.msg === 'response in place');
      const afterBlock = (await hosts.net.exec(hosts.net.scanner, ['nmap', ...v6, '-sS', '-Pn', '-n', '--max-retries', '1', '-p', '2', target])).stdout;
      // IPv4: the port shows filtered. IPv6: even neighbor discovery from the blocked
      // address is dropped, so nmap finds no host at all. Either way: no answer.
      assert.match(afterBlock, family === 'IPv4' ? /2\/tcp\s+filtered/ : /0 hosts up/, 'blocked: no answer at all');
    });
  }

  test('IPv6: a forged SYN to ff02::1 (every node on the link) is not a probe; the same SYN to this host is', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start(header + watchOnly);
    const forged = '2001:db8::77';
    const dev = /^\d+: ([^:@]+)/.exec((await hosts.net.exec(hosts.net.scanner, ['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout)![1]!;
    const forge = (target: string) =>
      hosts.net.exec(hosts.net.scanner, [process.execPath, FORGE, '--source', forged, '--target', target, '--port', '1', '--interface', dev]);
    await forge('ff02::1');
    await forge('ff02::1');
    await settle();
    assert.deepEqual(probes(sentry).filter((l) => l.source === forged), [], 'a SYN to the all-nodes group counted as a probe of this host');
    // The control: the same forged SYN to this host's own address is one.
    await forge(TARGET_V6);
    await sentry.waitFor((l) => l.msg.startsWith('attackalert:') && l.source === forged);
  });

  test('hping3 oddball flag sets are detected and labelled with their flags', async (t) => {
    if (!ready(t)) return;
    const sentry = await hosts.start(header + watchOnly);
    await hosts.net.exec(hosts.net.scanner, ['hping3', '-c', '1', '-S', '-F', '-p', '11', TARGET_V4]).catch(() => undefined);
    await hosts.net.exec(hosts.net.scanner, ['hping3', '-c', '1', '-U', '-p', '1', TARGET_V4]).catch(() => undefined);
    await hosts.net.exec(hosts.net.scanner, ['hping3', '-c', '1', '-S', '-A', '-p', '79', TARGET_V4]).catch(() => undefined);
    const synFin = await sentry.waitFor((l) => l.type === 'oddball' && l.port === 11);
    assert.equal(synFin.flags, 'FS');
    assert.match(synFin.msg, /Unknown Type: TCP Packet Flags: FS from host/);
    const urg = await sentry.waitFor((l) => l.type === 'oddball' && l.port === 1);
    assert.equal(urg.flags, 'U');
    await settle();
    assert.ok(!probes(sentry).some((l) => l.port === 79), 'SYN+ACK is a reply, not a probe');
  });

  test('advanced mode: listening, excluded and later-started services are never reported', async (t) => {
    if (!ready(t)) return;
    const early = await hosts.net.service(200);
    let late: ChildProcess | undefined;
    try {
      const sentry = await hosts.start(
        header +
          `  tcp: {mode: advanced, advancedLimit: 1024, exclude: [113]}
  udp: {mode: "off"}
  trigger: {count: 255}
  response: {tcp: alert, firewall: none}
`,
      );
      assert.equal(sentry.find((l) => l.msg === 'watching ports')?.ports, 1022, 'ports 1-1023 minus 113');
      late = await hosts.net.service(300);
      await new Promise((r) => setTimeout(r, 1500)); // one refresh of the ports-in-use table
      await hosts.net.exec(hosts.net.scanner, ['nmap', '-sS', '-Pn', '-n', '-p', '113,200,300,400,1024', TARGET_V4]);
      await sentry.waitFor((l) => l.port === 400);
      await settle();
      assert.deepEqual(probes(sentry).map((l) => l.port), [400]);
      assert.equal(probes(sentry)[0]!.mode, 'advanced');
    } finally {
      early.kill();
      late?.kill();
    }
  });

  test('replies and established traffic in both directions produce zero probes', async (t) => {
    if (!ready(t)) return;
    const outside = await hosts.net.outsideService(9000);
    try {
      const sentry = await hosts.start(
        header +
          `  tcp: {mode: advanced, advancedLimit: 65535}
  udp: {mode: advanced, advancedLimit: 65535}
  trigger: {count: 255}
  response: {tcp: alert, udp: alert, firewall: none}
`,
      );
      // Into the target: a session with data both ways to its real service.
      const inbound = await hosts.net.session(hosts.net.scanner, TARGET_V4, SERVICE_PORT);
      // Out of the target: its own connection to a service in the scanner namespace.
      const outbound = await hosts.net.session(hosts.net.target, SCANNER_V4, 9000);
      assert.equal(inbound, 'hello\nhello\n');
      assert.equal(outbound, 'hello\nhello\n');
      await settle();
      await new Promise((r) => setTimeout(r, 1200));
      assert.deepEqual(probes(sentry), []);
    } finally {
      outside.kill();
    }
  });
});
