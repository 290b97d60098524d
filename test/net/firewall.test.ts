// The firewall backends' netlink path against the real kernel, in a test namespace: what
// nft and ipset list after additions and removals made by netlink, and the errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TestNet } from '../helpers/netns.js';
import { prerequisites } from '../helpers/prereq.js';

const NFT = new URL('../../src/respond/firewall/nftables.js', import.meta.url).href;
const IPT = new URL('../../src/respond/firewall/iptables.js', import.meta.url).href;

describe('firewall sets changed by netlink', { concurrency: false }, () => {
  let net: TestNet | undefined;
  before(async () => {
    if (process.getuid?.() === 0) net = await TestNet.create();
  });
  after(async () => net?.destroy());

  /** Runs an ES module body in the target namespace; returns what it printed as JSON. */
  async function inTarget(body: string): Promise<Record<string, unknown>> {
    const { stdout } = await net!.exec(net!.target, [process.execPath, '--input-type=module', '-e', body]);
    return JSON.parse(stdout) as Record<string, unknown>;
  }

  test('nftables: hosts in the hash sets, CIDRs in the interval sets, listed by nft', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { execFileSync } from 'node:child_process';
      const out = {};
      const fw = new NftablesFirewall('nft', 'kps_fw_test');
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      await fw.setup();
      await fw.add('198.18.0.9', 4, 60_000);
      await fw.add('198.18.0.9', 4, 60_000);
      await fw.add('198.18.0.10', 4, 30_000);
      await fw.add('10.9.0.0/16', 4, 30_000);
      await fw.add('10.10.0.0/16', 4, 30_000);
      await fw.add('255.255.255.0/24', 4, 30_000);
      await fw.add('2001:db8::7', 6, 30_000);
      await fw.add('2001:db8:1::/48', 6, 30_000);
      out.overlap = await error(() => fw.add('10.9.1.0/24', 4, 30_000));
      out.wrongFamily = await error(() => fw.add('2001:db8::7', 4, 30_000));
      out.text = execFileSync('nft', ['list', 'table', 'inet', 'kps_fw_test']).toString();
      out.list4 = await fw.list(4);
      out.list6 = await fw.list(6);
      await fw.remove('198.18.0.9', 4);
      await fw.remove('198.18.0.9', 4);
      await fw.remove('10.9.0.0/16', 4);
      await fw.remove('2001:db8:1::/48', 6);
      out.after4 = (await fw.list(4)).map((e) => e.address);
      out.after6 = (await fw.list(6)).map((e) => e.address);
      await fw.teardown();
      out.afterTeardown = await error(() => fw.add('198.18.0.9', 4, 1000));
      console.log(JSON.stringify(out));`);
    assert.match(String(r.overlap), /nftables add 10\.9\.1\.0\/24: (EEXIST|ENOTEMPTY) \(overlaps/);
    assert.match(String(r.wrongFamily), /not an IPv4 address/);
    const text = String(r.text);
    assert.match(text, /set blocked4 \{[^}]*elements = \{ 198\.18\.0\.9 timeout 1m expires [^,]*, 198\.18\.0\.10 timeout 30s/);
    assert.match(text, /set blockednet4 \{[^}]*10\.9\.0\.0\/16 timeout 30s[^}]*10\.10\.0\.0\/16 timeout 30s[^}]*255\.255\.255\.0\/24 timeout 30s/);
    assert.match(text, /set blocked6 \{[^}]*2001:db8::7 timeout 30s/);
    assert.match(text, /set blockednet6 \{[^}]*2001:db8:1::\/48 timeout 30s/);
    const list4 = r.list4 as { address: string; expiresInSeconds: number }[];
    assert.deepEqual(list4.map((e) => e.address).sort(), ['10.10.0.0/16', '10.9.0.0/16', '198.18.0.10', '198.18.0.9', '255.255.255.0/24']);
    assert.ok(list4.every((e) => e.expiresInSeconds > 0 && e.expiresInSeconds <= 60));
    assert.deepEqual((r.list6 as { address: string }[]).map((e) => e.address).sort(), ['2001:db8:1::/48', '2001:db8::7']);
    assert.deepEqual((r.after4 as string[]).sort(), ['10.10.0.0/16', '198.18.0.10', '255.255.255.0/24']);
    assert.deepEqual(r.after6, ['2001:db8::7']);
    assert.match(String(r.afterTeardown), /ENOENT \(no set inet kps_fw_test blocked4/);
  });

  test('iptables: ipset entries added, refreshed and removed by netlink', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'ipset', 'iptables'] })) return;
    const r = await inTarget(`
      import { IptablesFirewall } from ${JSON.stringify(IPT)};
      const out = {};
      const fw = new IptablesFirewall();
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      await fw.setup();
      await fw.add('198.18.0.9', 4, 30_000);
      await fw.add('198.18.0.9', 4, 90_000);
      await fw.add('10.9.0.0/16', 4, 30_000);
      await fw.add('2001:db8::7', 6, 30_000);
      await fw.add('2001:db8:1::/48', 6, 30_000);
      out.badCidr = await error(() => fw.add('10.0.0.0/0', 4, 1000));
      out.list4 = await fw.list(4);
      out.list6 = (await fw.list(6)).map((e) => e.address);
      await fw.remove('198.18.0.9', 4);
      await fw.remove('198.18.0.9', 4);
      await fw.remove('2001:db8:1::/48', 6);
      out.after4 = (await fw.list(4)).map((e) => e.address);
      out.after6 = (await fw.list(6)).map((e) => e.address);
      await fw.teardown();
      out.afterTeardown = await error(() => fw.add('198.18.0.9', 4, 1000));
      console.log(JSON.stringify(out));`);
    const list4 = r.list4 as { address: string; expiresInSeconds: number }[];
    assert.deepEqual(list4.map((e) => e.address).sort(), ['10.9.0.0/16', '198.18.0.9']);
    assert.ok(list4.find((e) => e.address === '198.18.0.9')!.expiresInSeconds > 60, 'a second add refreshes the timeout (-exist)');
    assert.deepEqual((r.list6 as string[]).sort(), ['2001:db8:1::/48', '2001:db8::7']);
    assert.match(String(r.badCidr), /invalid CIDR/);
    assert.deepEqual(r.after4, ['10.9.0.0/16']);
    assert.deepEqual(r.after6, ['2001:db8::7']);
    assert.match(String(r.afterTeardown), /IPv4 blocking is not available|no set kube-portsentry-v4/);
  });
});
