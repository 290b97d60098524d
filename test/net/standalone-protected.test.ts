// The standalone sentry (`kube-portsentry run`) never blocks what would cut its host off:
// the always-protected ranges (link-local with the cloud metadata address, loopback,
// multicast, ...) and its host's default gateways and resolvers, as the agent does, in the
// engine and in the kernel fast path's ignore sets alike. One SYN forged from each of them
// blocks nothing; the same SYN from an ordinary address is still blocked (the control).
// Real sentry process, real nftables, real hping3 in test namespaces; the target's resolver
// is named in /etc/netns/<target>/resolv.conf, which `ip netns exec` puts in its place.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { GATEWAY_NOWHERE_V4, TARGET_V4 } from '../../support/netns.js';
import { useTestHosts } from '../../support/suite.js';

const RESOLVER = '198.18.0.53';
const METADATA = '169.254.169.254';
const CONTROL = '198.18.0.77';

const policy = (response: string) => `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: protected}
spec:
  files: {history: "", blocked: ""}
  tcp: {mode: stealth, ports: [1]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables${response}}
`;

describe('the standalone sentry protects its gateway, its resolvers and the always-protected ranges', { concurrency: false }, () => {
  const hosts = useTestHosts({ tools: ['ip', 'hping3', 'nft'], servicePort: 8080 });
  const ready = (t: TestContext) => hosts.ready(t);
  let dir: string;
  let netnsDir = '';
  const hadNetnsDir = existsSync('/etc/netns');
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kps-protected-'));
    if (process.getuid?.() !== 0) return;
    netnsDir = join('/etc/netns', hosts.net.target);
    await mkdir(netnsDir, { recursive: true });
    await writeFile(join(netnsDir, 'resolv.conf'), `nameserver ${RESOLVER}\n`);
  });
  after(async () => {
    if (netnsDir) await rm(netnsDir, { recursive: true, force: true });
    if (netnsDir && !hadNetnsDir) await rmdir('/etc/netns').catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  const forge = (source: string) => hosts.net.exec(hosts.net.scanner, ['hping3', '-S', '-c', '1', '-a', source, '-p', '1', TARGET_V4]).catch(() => undefined);
  const blocked4 = async () => (await hosts.net.exec(hosts.net.target, ['nft', 'list', 'set', 'inet', 'kube_portsentry', 'blocked4'])).stdout;

  for (const [name, response] of [['raw sockets', ''], ['kernel fast path', ', kernelFastPath: true']] as const)
    test(`${name}: one forged SYN each from the default gateway, the resolver and ${METADATA} blocks nothing; the control is blocked`, async (t) => {
      if (!ready(t)) return;
      const file = join(dir, `${name.replace(/ /g, '-')}.yaml`);
      await writeFile(file, policy(response));
      const sentry = await hosts.start({ args: ['--policy', file] });
      assert.match((await hosts.net.exec(hosts.net.target, ['ip', 'route', 'show', 'default'])).stdout, new RegExp(`via ${GATEWAY_NOWHERE_V4.replaceAll('.', '\\.')}`), 'the target\'s default gateway');
      // The fast path's ignore sets are filled once the sentry is ready; the control goes last.
      for (const source of [GATEWAY_NOWHERE_V4, RESOLVER, METADATA, CONTROL]) await forge(source);
      if (response) {
        for (let i = 0; i < 50 && !(await blocked4()).includes(CONTROL); i++) await new Promise((r) => setTimeout(r, 100));
      } else await sentry.waitFor((l) => l.msg === 'scan detected: blocking' && l.source === CONTROL);
      const set = await blocked4();
      t.diagnostic(set.replace(/\s+/g, ' '));
      assert.ok(set.includes(CONTROL), 'the control address is blocked');
      for (const source of [GATEWAY_NOWHERE_V4, RESOLVER, METADATA]) {
        assert.ok(!set.includes(source), `${source} is in the block set`);
        assert.ok(!sentry.lines.some((l) => l.msg.startsWith('scan detected') && l.source === source), `${source} was judged a scan`);
      }
      if (!response)
        for (const source of [GATEWAY_NOWHERE_V4, RESOLVER, METADATA])
          assert.ok(sentry.lines.some((l) => l.msg === 'probe from ignored source' && l.source === source && l.reason === 'protected'), `${source} ignored as protected`);
    });
});
