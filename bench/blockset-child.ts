// Run by bench/blockset.ts inside the target namespace: the block set at scale, through
// the agent's own path (a BlockSet over the nftables or iptables firewall, claims, reconcile).
//  - one claim (one address more) timed `--adds` times on an empty set, and again once the
//    set holds `--entries` addresses;
//  - a rebuild after a restart, as the agent does it (setup({keepEntries}), a claim per
//    BlockedHost, reconcile), from an empty table and from a kept one already holding
//    them, with batched additions (addMany) and with one round trip per address;
//  - one reconcile with nothing to change (the agent's periodic pass).
// Addresses come from the test ranges (198.19.0.0/16, 2001:db8:100::/48), half of each
// family. The sets are left full for the caller's flood (--teardown removes them); it
// prints JSON on stdout.
import { parseArgs } from 'node:util';
import { addressOrNetworkOf, type AddressOrNetwork } from '../src/net/address.js';
import { BlockSet } from '../src/respond/firewall/block-set.js';
import type { Firewall } from '../src/respond/firewall/firewall.js';
import { IptablesFirewall } from '../src/respond/firewall/iptables.js';
import { NftablesFirewall } from '../src/respond/firewall/nftables.js';

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'nftables' },
    entries: { type: 'string', default: '100000' },
    adds: { type: 'string', default: '300' },
    table: { type: 'string', default: 'kps_bench_blockset' },
    teardown: { type: 'boolean', default: false },
  },
});
const backend = values.backend!;
if (backend !== 'nftables' && backend !== 'iptables') throw new Error(`--backend is nftables or iptables, not ${JSON.stringify(backend)}`);
const makeFirewall = (): Firewall => (backend === 'nftables' ? new NftablesFirewall('nft', values.table!) : new IptablesFirewall());
if (values.teardown) {
  await makeFirewall().teardown();
  process.exit(0);
}
const entries = Number(values.entries);
const adds = Number(values.adds);
if (!(entries > 0 && entries <= 130_000) || !(adds > 0 && adds <= 20_000))
  throw new Error(`--entries must be 1..130000 and --adds 1..20000 (the test ranges hold that many), got ${entries} and ${adds}`);

/** Entry i: even i IPv4 from 198.19.0.0/16, odd i IPv6 from 2001:db8:100::/48. */
// Parsed where they are claimed, as the agent parses a BlockedHost's address once it arrives.
const at = (text: string): AddressOrNetwork => addressOrNetworkOf(text)!;
const wanted = (i: number): AddressOrNetwork => at(i % 2 === 0 ? `198.19.${(i >> 9) & 255}.${(i >> 1) & 255}` : `2001:db8:100::${((i >> 1) + 1).toString(16)}`);
/** The extra addresses of the one-more timings: 198.18.128.0/17, 2001:db8:200::/48. */
const extra = (i: number): AddressOrNetwork => at(i % 2 === 0 ? `198.18.${128 + ((i >> 9) & 127)}.${(i >> 1) & 255}` : `2001:db8:200::${((i >> 1) + 1).toString(16)}`);

const until = Date.now() + 3_600_000;

/** The firewall without its batched path: every addition a netlink round trip of its own. */
function oneByOne(fw: Firewall): Firewall {
  return {
    name: fw.name,
    setup: (o) => fw.setup(o),
    add: (...a) => fw.add(...a),
    remove: (...a) => fw.remove(...a),
    list: (f) => fw.list(f),
    teardown: () => fw.teardown(),
  };
}

function blockSet(fw: Firewall): BlockSet {
  return new BlockSet(fw, (err, address) => {
    throw new Error(`block set: ${address}: ${(err as Error).message}`);
  });
}

async function oneMore(set: BlockSet, from: number): Promise<number[]> {
  // Untimed first: the socket's opening and the first compilations are no addition's cost.
  for (let i = 0; i < 10; i++) await set.claim('cluster', extra(2 * adds + from + i), until);
  const ms: number[] = [];
  for (let i = from; i < from + adds; i++) {
    const t0 = performance.now();
    await set.claim('cluster', extra(i), until);
    ms.push(performance.now() - t0);
  }
  return ms;
}

/** The agent's restart: setup keeping entries, a claim per BlockedHost, reconcile. Milliseconds per phase. */
async function rebuild(batched: boolean): Promise<{ setup: number; claims: number; reconcile: number; added: number; set: BlockSet }> {
  const real = makeFirewall();
  const fw = batched ? real : oneByOne(real);
  const t0 = performance.now();
  await fw.setup({ keepEntries: true });
  const t1 = performance.now();
  const set = blockSet(fw);
  const claims: Promise<void>[] = [];
  for (let i = 0; i < entries; i++) claims.push(set.claim('cluster', wanted(i), until));
  await Promise.all(claims);
  const t2 = performance.now();
  const { added } = await set.reconcile();
  const t3 = performance.now();
  return { setup: t1 - t0, claims: t2 - t1, reconcile: t3 - t2, added, set };
}

const fresh = makeFirewall();
await fresh.setup();
const empty = blockSet(fresh);
const addEmpty = await oneMore(empty, 0);
const result: Record<string, unknown> = { addEmpty };
const phases = ({ setup, claims, reconcile, added }: Awaited<ReturnType<typeof rebuild>>) => ({ setup, claims, reconcile, added });
for (const batched of [false, true]) {
  await fresh.teardown();
  result[`fromEmpty.${batched ? 'batched' : 'single'}`] = phases(await rebuild(batched));
}
let last: BlockSet | undefined;
for (const batched of [false, true]) {
  const r = await rebuild(batched);
  result[`kept.${batched ? 'batched' : 'single'}`] = phases(r);
  last = r.set;
}
const listed = [...(await fresh.list(4)), ...(await fresh.list(6))].length;
if (listed !== entries) throw new Error(`the kernel lists ${listed} entries, expected ${entries}`);
result.addFull = await oneMore(last!, adds);
const t0 = performance.now();
await last!.reconcile();
result.steadyReconcile = performance.now() - t0;
result.listed = listed;
process.stdout.write(`${JSON.stringify(result)}\n`);
