// The firewall backends' netlink path against the real kernel, in a test namespace: what
// nft and ipset list after additions and removals made by netlink, and the errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const NFT = new URL('../../src/respond/firewall/nftables.js', import.meta.url).href;
const IPT = new URL('../../src/respond/firewall/iptables.js', import.meta.url).href;
const BLOCK_SET = new URL('../../src/respond/firewall/block-set.js', import.meta.url).href;
const OWNER = new URL('../../src/respond/firewall/owner.js', import.meta.url).href;
const OWNED = new URL('../../src/respond/owned-state.js', import.meta.url).href;
const ADDRESS = new URL('../../src/net/address.js', import.meta.url).href;
/** What every script in the namespace has: `at` parses a test's address text, `listed` gives a listing's entries their text. */
const PRELUDE = `import { addressOrNetworkOf as at } from ${JSON.stringify(ADDRESS)};
const listed = (entries) => entries.map(({ target, ...e }) => ({ address: target.text, ...e }));
`;

describe('firewall sets changed by netlink', { concurrency: false }, () => {
  let net: TestNet | undefined;
  before(async () => {
    if (process.getuid?.() === 0) net = await TestNet.create();
  });
  after(async () => net?.destroy());

  /** Runs an ES module body in the target namespace; returns what it printed as JSON. */
  async function inTarget(body: string): Promise<Record<string, unknown>> {
    const { stdout } = await net!.exec(net!.target, [process.execPath, '--input-type=module', '-e', PRELUDE + body]);
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
      await fw.add(at('198.18.0.9'), 60_000);
      await fw.add(at('198.18.0.9'), 60_000);
      await fw.add(at('198.18.0.10'), 30_000);
      await fw.add(at('10.9.0.0/16'), 30_000);
      await fw.add(at('10.10.0.0/16'), 30_000);
      await fw.add(at('255.255.255.0/24'), 30_000);
      await fw.add(at('2001:db8::7'), 30_000);
      await fw.add(at('2001:db8:1::/48'), 30_000);
      out.overlap = await error(() => fw.add(at('10.9.1.0/24'), 30_000));
      out.text = execFileSync('nft', ['list', 'table', 'inet', 'kps_fw_test']).toString();
      out.list4 = listed(await fw.list(4));
      out.list6 = listed(await fw.list(6));
      await fw.remove(at('198.18.0.9'));
      await fw.remove(at('198.18.0.9'));
      await fw.remove(at('10.9.0.0/16'));
      await fw.remove(at('2001:db8:1::/48'));
      out.after4 = (await fw.list(4)).map((e) => e.target.text);
      out.after6 = (await fw.list(6)).map((e) => e.target.text);
      await fw.teardown();
      out.afterTeardown = await error(() => fw.add(at('198.18.0.9'), 1000));
      console.log(JSON.stringify(out));`);
    assert.match(String(r.overlap), /nftables add 10\.9\.1\.0\/24: (EEXIST|ENOTEMPTY) \(overlaps/);
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

  test('nftables: a listing taken while the sets change is taken again, never read wrong (no network made of the ends of two)', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      const fw = new NftablesFirewall('nft', 'kps_fw_listing');
      const other = new NftablesFirewall('nft', 'kps_fw_listing');
      await fw.setup();
      const nets = [];
      for (let i = 0; i < 3000; i++) nets.push(at('10.' + (i >> 7) + '.' + ((i & 127) * 2) + '.0/23'));
      for (let i = 0; i < nets.length; i += 1000) await fw.addMany(nets.slice(i, i + 1000).map((target) => ({ target, timeoutMs: 600_000 })));
      // Another writer removes a network at every turn of the event loop while the listing
      // reads its datagrams, for the first 12 turns.
      const removed = new Set();
      let turns = 0;
      const churn = () => {
        if (turns++ >= 12) return;
        const victim = nets[(turns * 997) % nets.length];
        removed.add(victim.text);
        other.remove(victim).then(() => setImmediate(churn));
      };
      setImmediate(churn);
      const listing = (await fw.list(4)).map((e) => e.target.text);
      await new Promise((r) => setTimeout(r, 50));
      const kernel = new Set((await fw.list(4)).map((e) => e.target.text));
      await fw.teardown();
      console.log(JSON.stringify({ listing, kernel: [...kernel], removed: [...removed], all: nets.map((n) => n.text), turns }));`);
    const all = new Set(r.all as string[]);
    const removed = new Set(r.removed as string[]);
    assert.ok((r.turns as number) > 12, 'the churn ran during the listing');
    for (const address of r.listing as string[]) assert.ok(all.has(address), `listed ${address}, which was never added`);
    // Everything the churn left is listed: the listing that returned was a steady one.
    const missing = (r.all as string[]).filter((a) => !removed.has(a) && !(r.listing as string[]).includes(a));
    assert.deepEqual(missing, []);
    assert.deepEqual((r.kernel as string[]).length, all.size - removed.size);
  });

  test('nftables: many additions in one transaction, all or none', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      const out = {};
      const fw = new NftablesFirewall('nft', 'kps_fw_many');
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      await fw.setup();
      const adds = [];
      for (let i = 0; i < 998; i++) adds.push(i % 2 ? { target: at('198.19.' + (i >> 8) + '.' + (i & 255)), timeoutMs: 60_000, tag: 'cluster' }
        : { target: at('2001:db8:5::' + i.toString(16)), timeoutMs: Infinity });
      adds.push({ target: at('10.9.0.0/16'), timeoutMs: 30_000 }, { target: at('2001:db8:1::/48'), timeoutMs: 30_000 });
      await fw.addMany(adds);
      await fw.addMany(adds.slice(0, 10)); // already there: no error, as add
      out.list4 = listed(await fw.list(4));
      out.list6 = listed(await fw.list(6));
      // One element overlapping an interval already there: the kernel rejects the whole batch.
      out.overlap = await error(() => fw.addMany([{ target: at('198.18.7.7'), timeoutMs: 1000 }, { target: at('10.9.1.0/24'), timeoutMs: 1000 }]));
      out.afterOverlap = (await fw.list(4)).some((e) => e.target.text === '198.18.7.7');
      out.tooMany = await error(() => fw.addMany(Array.from({ length: 1001 }, (_, i) => ({ target: at('198.18.9.' + (i % 250)), timeoutMs: 1000 }))));
      await fw.teardown();
      console.log(JSON.stringify(out));`);
    const list4 = r.list4 as { address: string; expiresInSeconds?: number; tag?: string }[];
    const list6 = r.list6 as { address: string; expiresInSeconds?: number; tag?: string }[];
    assert.equal(list4.length, 500);
    assert.equal(list6.length, 500);
    assert.ok(list4.filter((e) => e.address.startsWith('198.19.')).every((e) => e.tag === 'cluster' && e.expiresInSeconds! > 50));
    assert.ok(list4.some((e) => e.address === '10.9.0.0/16'));
    assert.ok(list6.filter((e) => e.address.startsWith('2001:db8:5::')).every((e) => e.expiresInSeconds === undefined && e.tag === undefined));
    assert.ok(list6.some((e) => e.address === '2001:db8:1::/48'));
    assert.match(String(r.overlap), /nftables add 2 addresses \(198\.18\.7\.7 first\): (EEXIST|ENOTEMPTY)/);
    assert.equal(r.afterOverlap, false, 'nothing of a rejected batch stays');
    assert.match(String(r.tooMany), /1001 additions, at most 1000/);
  });

  test('a BlockSet takes a burst of claims to the kernel in batches; a bad one fails alone', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { BlockSet } from ${JSON.stringify(BLOCK_SET)};
      const out = { calls: { add: 0, addMany: 0 }, errors: [] };
      const real = new NftablesFirewall('nft', 'kps_fw_blockset');
      await real.setup();
      await real.add(at('10.9.0.0/16'), 60_000);
      // The real firewall, counting how the set reaches it.
      const fw = {
        name: real.name,
        setup: (o) => real.setup(o),
        add: (...a) => (out.calls.add++, real.add(...a)),
        addMany: (adds) => (out.calls.addMany++, real.addMany(adds)),
        remove: (...a) => real.remove(...a),
        list: (f) => real.list(f),
        teardown: () => real.teardown(),
      };
      const set = new BlockSet(fw, (err, address) => out.errors.push([address, err.message]));
      const until = Date.now() + 600_000;
      const claims = [];
      for (let i = 0; i < 2400; i++) claims.push(set.claim('cluster', at(i % 3 ? '198.19.' + (i >> 8) + '.' + (i & 255) : '2001:db8:6::' + (i + 1).toString(16)), until));
      claims.push(set.claim('local', at('10.9.3.0/24'), until)); // overlaps the /16 already there
      await Promise.all(claims);
      out.first = { ...out.calls };
      await set.claim('local', at('198.18.5.5'), until); // alone: one round trip
      out.single = { ...out.calls };
      const entries = [...(await real.list(4)), ...(await real.list(6))];
      out.listed = entries.length;
      out.cluster = entries.filter((e) => e.tag === 'cluster').length;
      out.reconcile = await set.reconcile();
      out.finalErrors = out.errors.length;
      out.nets = (await real.list(4)).filter((e) => e.target.text.includes('/')).map((e) => e.target.text);
      await real.teardown();
      console.log(JSON.stringify(out));`);
    const first = r.first as { add: number; addMany: number };
    // 2,401 additions: three batches, the one holding the overlap retried one by one.
    assert.equal(first.addMany, 3);
    assert.ok(first.add >= 1 && first.add <= 1000, `one by one only for the rejected batch (${first.add})`);
    assert.deepEqual(r.errors, [['10.9.3.0/24', (r.errors as string[][])[0]?.[1]]]);
    assert.match((r.errors as string[][])[0]![1]!, /overlaps an interval/);
    assert.deepEqual(r.single, { add: first.add + 1, addMany: 3 });
    assert.equal(r.listed, 2400 + 1 + 1);
    assert.equal(r.cluster, 2400);
    // The untagged /16 nobody wants goes, and with it the overlap: the /24 now fits.
    assert.deepEqual(r.reconcile, { added: 1, removed: 1 });
    assert.equal(r.finalErrors, 1);
    assert.deepEqual(r.nets, ['10.9.3.0/24']);
  });

  test('the fast path over a BlockSet: a trapped source is retagged local in place, kept by reconcile, and retagged cluster in place', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft', 'hping3'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { BlockSet } from ${JSON.stringify(BLOCK_SET)};
      import { execFileSync } from 'node:child_process';
      const out = { calls: [], errors: [], probes: [] };
      const real = new NftablesFirewall('nft', 'kps_fw_trap');
      await real.setup();
      // The real firewall, recording what reaches it for the scanner's address.
      const mine = (target) => target.text === ${JSON.stringify(SCANNER_V4)};
      const fw = {
        name: real.name,
        setup: (o) => real.setup(o),
        add: (target, ...a) => (mine(target) && out.calls.push('add'), real.add(target, ...a)),
        replace: (add) => (mine(add.target) && out.calls.push('replace ' + add.tag), real.replace(add)),
        remove: (target) => (mine(target) && out.calls.push('remove'), real.remove(target)),
        list: (f) => real.list(f),
        teardown: () => real.teardown(),
        fastPath: (settings) => real.fastPath(settings),
      };
      const set = new BlockSet(fw, (err, address) => out.errors.push([address, err.message]));
      const view = set.view('local');
      let claimed;
      const fast = view.fastPath({
        modes: { tcp: 'stealth' }, timeoutMs: 600_000, perMinute: 60,
        // As the responder does for the engine's block: the local owner claims it.
        onProbe: (p) => { out.probes.push([p.source.text, p.blockedInKernel]); claimed = view.add(p.source, 3_600_000); },
        onSpoofed: () => {}, onLoss: () => {},
      });
      await fast.start();
      const ports = new Uint8Array(65536); ports[1] = 1;
      await fast.sync({ ports: { tcp: ports }, ignored: [] });
      const tags = async () => (await real.list(4)).filter((e) => mine(e.target)).map((e) => e.tag ?? 'untagged');
      try { execFileSync('ip', ['netns', 'exec', ${JSON.stringify(net?.scanner ?? '')}, 'hping3', '-S', '-c', '1', '-p', '1', ${JSON.stringify(TARGET_V4)}], { stdio: 'ignore' }); } catch {}
      for (let i = 0; !claimed && i < 100; i++) await new Promise((r) => setTimeout(r, 20));
      await claimed;
      out.afterClaim = await tags();
      out.reconcile = await set.reconcile();
      out.afterReconcile = await tags();
      await set.claim('cluster', at(${JSON.stringify(SCANNER_V4)}), Date.now() + 7_200_000);
      out.afterCluster = await tags();
      await fast.remove();
      out.chains = execFileSync('nft', ['list', 'table', 'inet', 'kps_fw_trap']).toString().match(/chain \\S+/g);
      await real.teardown();
      console.log(JSON.stringify(out));`);
    assert.deepEqual(r.probes, [[SCANNER_V4, true]]);
    assert.deepEqual(r.afterClaim, ['local'], 'the trap\'s untagged entry, retagged by the local claim');
    assert.deepEqual(r.reconcile, { added: 0, removed: 0 });
    assert.deepEqual(r.afterReconcile, ['local']);
    assert.deepEqual(r.afterCluster, ['cluster']);
    assert.deepEqual(r.calls, ['replace local', 'replace cluster'], 'the entry was taken out and put back: never in the set between');
    assert.deepEqual(r.chains, ['chain prerouting'], 'the fast path\'s chains stayed after remove');
    assert.deepEqual(r.errors, []);
  });

  test('overlapping CIDRs: both enforced whatever the order of claims and releases', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { BlockSet } from ${JSON.stringify(BLOCK_SET)};
      const out = { errors: [] };
      const fw = new NftablesFirewall('nft', 'kps_fw_overlap');
      await fw.setup();
      const set = new BlockSet(fw, (err, address) => out.errors.push([address, err.message]));
      const nets = async () => (await fw.list(4)).filter((e) => e.target.text.includes('/')).map((e) => e.target.text).sort();
      const until = Date.now() + 600_000;
      await set.claim('cluster', at('10.1.0.0/16'), Infinity);
      await set.claim('cluster', at('10.0.0.0/8'), Infinity);
      out.smallThenBig = await nets();
      await set.release('cluster', at('10.0.0.0/8'));
      out.bigReleased = await nets();
      await set.claim('cluster', at('10.0.0.0/8'), Infinity);
      await set.release('cluster', at('10.1.0.0/16'));
      out.smallReleased = await nets();
      await set.release('cluster', at('10.0.0.0/8'));
      out.none = await nets();
      await set.claim('cluster', at('10.0.0.0/8'), until);
      await set.claim('local', at('10.2.3.0/24'), until);
      await set.claim('cluster', at('10.2.0.0/16'), Infinity);
      out.reconcile = await set.reconcile();
      out.nested = await nets();
      await set.release('cluster', at('10.0.0.0/8'));
      out.outerReleased = await nets();
      await fw.teardown();
      console.log(JSON.stringify(out));`);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.smallThenBig, ['10.0.0.0/8']);
    assert.deepEqual(r.bigReleased, ['10.1.0.0/16']);
    assert.deepEqual(r.smallReleased, ['10.0.0.0/8']);
    assert.deepEqual(r.none, []);
    assert.deepEqual(r.reconcile, { added: 0, removed: 0 });
    assert.deepEqual(r.nested, ['10.0.0.0/8']);
    assert.deepEqual(r.outerReleased, ['10.2.0.0/16']);
  });

  test('every entry gets a kernel timeout (24 h without an expiry), renewed on reconcile', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { BlockSet } from ${JSON.stringify(BLOCK_SET)};
      const out = { errors: [] };
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const fw = new NftablesFirewall('nft', 'kps_fw_lifetime');
      await fw.setup();
      const onError = (err, address) => out.errors.push([address, err.message]);
      const day = new BlockSet(fw, onError);
      await day.claim('cluster', at('198.18.77.1'), Infinity);
      await day.claim('cluster', at('10.77.0.0/16'), Infinity);
      out.day = (await fw.list(4)).map((e) => e.expiresInSeconds ?? null);
      await fw.setup();
      const short = new BlockSet(fw, onError, { maxEntryLifetimeMs: 4000 });
      await short.claim('cluster', at('198.18.77.2'), Infinity);
      await short.claim('local', at('198.18.77.3'), Date.now() + 600_000);
      out.first = (await fw.list(4)).map((e) => e.expiresInSeconds ?? null);
      await sleep(2500);
      await short.reconcile();
      await sleep(2500);
      out.renewed = (await fw.list(4)).map((e) => e.target.text).sort();
      await fw.teardown();
      console.log(JSON.stringify(out));`);
    assert.deepEqual(r.errors, []);
    for (const left of r.day as (number | null)[]) assert.ok(left !== null && left > 86_000 && left <= 86_400, `kernel timeout ${left} s, not 24 h`);
    for (const left of r.first as (number | null)[]) assert.ok(left !== null && left <= 4, `kernel timeout ${left} s, not the 4 s bound`);
    assert.deepEqual(r.renewed, ['198.18.77.2', '198.18.77.3']);
  });

  test('iptables: ipset entries added, refreshed and removed by netlink', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'ipset', 'iptables'] })) return;
    const r = await inTarget(`
      import { IptablesFirewall } from ${JSON.stringify(IPT)};
      const out = {};
      const fw = new IptablesFirewall();
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      await fw.setup();
      await fw.add(at('198.18.0.9'), 30_000);
      await fw.add(at('198.18.0.9'), 90_000);
      await fw.add(at('10.9.0.0/16'), 30_000);
      await fw.add(at('2001:db8::7'), 30_000);
      await fw.add(at('2001:db8:1::/48'), 30_000);
      out.badCidr = await error(() => fw.add(at('10.0.0.0/0'), 1000));
      out.list4 = listed(await fw.list(4));
      out.list6 = (await fw.list(6)).map((e) => e.target.text);
      await fw.remove(at('198.18.0.9'));
      await fw.remove(at('198.18.0.9'));
      await fw.remove(at('2001:db8:1::/48'));
      out.after4 = (await fw.list(4)).map((e) => e.target.text);
      out.after6 = (await fw.list(6)).map((e) => e.target.text);
      await fw.teardown();
      out.afterTeardown = await error(() => fw.add(at('198.18.0.9'), 1000));
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

  test('iptables: many additions in one datagram, tags included; one tagged addition by netlink', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'ipset', 'iptables'] })) return;
    const r = await inTarget(`
      import { IptablesFirewall } from ${JSON.stringify(IPT)};
      const out = {};
      const fw = new IptablesFirewall();
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      await fw.setup();
      const adds = [];
      for (let i = 0; i < 1000; i++) adds.push(i % 2 ? { target: at('198.19.' + (i >> 8) + '.' + (i & 255)), timeoutMs: 60_000, tag: 'cluster' }
        : { target: at('2001:db8:5::' + (i + 1).toString(16)), timeoutMs: 30_000 });
      adds[0] = { target: at('10.9.0.0/16'), timeoutMs: 30_000, tag: 'local' };
      await fw.addMany(adds);
      await fw.addMany(adds.slice(0, 10)); // already there: no error
      await fw.add(at('198.18.8.8'), 30_000, 'cluster'); // one tagged addition: by netlink
      out.list4 = listed(await fw.list(4));
      out.list6 = listed(await fw.list(6));
      out.injection = at('198.18.7.7 timeout 1'); // text with more in it never becomes a target
      out.badTag = await error(() => fw.addMany([{ target: at('198.18.7.7'), timeoutMs: 1000, tag: 'a b' }]));
      out.badCidr = await error(() => fw.addMany([{ target: at('10.0.0.0/0'), timeoutMs: 1000 }]));
      await fw.teardown();
      console.log(JSON.stringify(out));`);
    const list4 = r.list4 as { address: string; expiresInSeconds?: number; tag?: string }[];
    const list6 = r.list6 as { address: string; expiresInSeconds?: number; tag?: string }[];
    assert.equal(list4.length, 502);
    assert.equal(list6.length, 499);
    assert.deepEqual(list4.find((e) => e.address === '198.18.8.8')?.tag, 'cluster');
    assert.ok(list4.filter((e) => e.address.startsWith('198.19.')).every((e) => e.tag === 'cluster' && e.expiresInSeconds! > 50));
    assert.deepEqual(list4.find((e) => e.address === '10.9.0.0/16')?.tag, 'local');
    assert.ok(list6.every((e) => e.tag === undefined && e.expiresInSeconds! <= 30));
    assert.equal(r.injection, null);
    assert.match(String(r.badTag), /bad firewall tag "a b"/);
    assert.match(String(r.badCidr), /ipset add 0\.0\.0\.0\/0: IPSET_ERR \d+ \(invalid CIDR\)/);
  });

  test('owners: the standalone sentry and two agent releases on one node never set up or remove each other\'s nftables table', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'nft'] })) return;
    const r = await inTarget(`
      import { NftablesFirewall } from ${JSON.stringify(NFT)};
      import { firewallNames } from ${JSON.stringify(OWNER)};
      import { removeOwnedState } from ${JSON.stringify(OWNED)};
      import { execFileSync } from 'node:child_process';
      const out = {};
      const error = async (fn) => { try { await fn(); return null; } catch (e) { return e.message; } };
      const fw = (names) => new NftablesFirewall('nft', names.table, names);
      const standalone = firewallNames({ kind: 'standalone', stateDir: '/var/lib/kube-portsentry' });
      const a = firewallNames({ kind: 'agent', instance: 'kps' });
      const b = firewallNames({ kind: 'agent', instance: 'other' });
      await fw(a).setup({ keepEntries: true });
      await fw(a).add(at('198.18.0.10'), 60_000, 'cluster');
      await fw(b).setup({ keepEntries: true });
      await fw(b).add(at('198.18.0.11'), 60_000, 'cluster');
      // The standalone sentry's start (a fresh table, as before this change, and a kept one) and flush.
      await fw(standalone).setup();
      await fw(standalone).add(at('198.18.0.12'), 60_000, 'detected');
      await fw(standalone).setup({ keepEntries: true });
      out.standalone = (await fw(standalone).list(4)).map((e) => e.target.text);
      await removeOwnedState({ names: standalone });
      const inet = () => execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).trim().split('\\n').filter((l) => l.includes(' inet '));
      out.afterFlush = inet();
      out.a = (await fw(a).list(4)).map((e) => e.target.text);
      // An agent restart (setup keeping entries) leaves the other release alone too.
      await fw(a).setup({ keepEntries: true });
      out.b = (await fw(b).list(4)).map((e) => e.target.text);
      await removeOwnedState({ names: a });
      out.afterCleanup = inet();
      // A table of our name that another owner marked is refused, not taken over nor removed.
      execFileSync('nft', ['add table inet kube_portsentry { comment "kube-portsentry standalone /srv/other" ; }']);
      out.setup = await error(() => fw(standalone).setup({ keepEntries: true }));
      out.teardown = await error(() => fw(standalone).teardown());
      out.stillThere = execFileSync('nft', ['list', 'tables'], { encoding: 'utf8' }).includes('kube_portsentry\\n');
      execFileSync('nft', ['delete table inet kube_portsentry']);
      // One made before owners were marked is adopted.
      execFileSync('nft', ['add table inet kube_portsentry']);
      out.legacy = await error(() => fw(standalone).setup({ keepEntries: true }));
      await fw(standalone).teardown();
      await fw(b).teardown();
      console.log(JSON.stringify(out));`);
    assert.deepEqual(r.standalone, ['198.18.0.12'], 'a restart keeps the entries');
    assert.deepEqual(r.afterFlush, ['table inet kube_portsentry_agent_kps', 'table inet kube_portsentry_agent_other']);
    assert.deepEqual(r.a, ['198.18.0.10']);
    assert.deepEqual(r.b, ['198.18.0.11']);
    assert.deepEqual(r.afterCleanup, ['table inet kube_portsentry_agent_other']);
    assert.match(String(r.setup), /nftables table inet kube_portsentry belongs to "kube-portsentry standalone \/srv\/other", not to "kube-portsentry standalone \/var\/lib\/kube-portsentry": refusing/);
    assert.match(String(r.teardown), /belongs to "kube-portsentry standalone \/srv\/other"/);
    assert.equal(r.stillThere, true);
    assert.equal(r.legacy, null);
  });

  test('owners: iptables chains and ipsets of the standalone sentry and an agent release coexist; a cleanup takes only its own', async (t) => {
    if (!prerequisites(t, { root: true, tools: ['ip', 'ipset', 'iptables'] })) return;
    const r = await inTarget(`
      import { IptablesFirewall } from ${JSON.stringify(IPT)};
      import { firewallNames } from ${JSON.stringify(OWNER)};
      import { removeOwnedState } from ${JSON.stringify(OWNED)};
      import { execFileSync } from 'node:child_process';
      const out = {};
      const sh = (...a) => execFileSync(a[0], a.slice(1), { encoding: 'utf8' });
      const standalone = firewallNames({ kind: 'standalone', stateDir: '/var/lib/kube-portsentry' });
      const agent = firewallNames({ kind: 'agent', instance: 'kps' });
      const s = new IptablesFirewall(standalone);
      const a = new IptablesFirewall(agent);
      await a.setup({ keepEntries: true });
      await a.add(at('198.18.0.10'), 60_000, 'cluster');
      await s.setup();
      await s.add(at('198.18.0.12'), 60_000, 'detected');
      await s.setup({ keepEntries: true });
      out.jumps = sh('iptables', '-t', 'raw', '-S', 'PREROUTING').trim().split('\\n').slice(1);
      out.kept = (await s.list(4)).map((e) => e.target.text);
      await removeOwnedState({ names: standalone });
      out.sets = sh('ipset', 'list', '-n').trim().split('\\n').sort();
      out.agent = (await a.list(4)).map((e) => e.target.text);
      await removeOwnedState({ names: agent });
      out.after = [sh('ipset', 'list', '-n').trim(), sh('iptables', '-t', 'raw', '-S', 'PREROUTING').trim()];
      console.log(JSON.stringify(out));`);
    assert.deepEqual(r.jumps, [
      '-A PREROUTING -m comment --comment "kube-portsentry standalone /var/lib/kube-portsentry" -j KUBE-PORTSENTRY',
      '-A PREROUTING -m comment --comment "kube-portsentry agent kps" -j KPS-kps',
    ], 'one jump each, a restart adds none');
    assert.deepEqual(r.kept, ['198.18.0.12']);
    assert.deepEqual(r.sets, ['kps-kps-v4', 'kps-kps-v6']);
    assert.deepEqual(r.agent, ['198.18.0.10']);
    assert.deepEqual(r.after, ['', '-P PREROUTING ACCEPT']);
  });
});
