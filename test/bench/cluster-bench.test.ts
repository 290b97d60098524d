// The cluster benchmark still runs end to end at tiny sizes and writes its JSON (figures are
// not asserted: timing is not a test). Needs what the cluster test needs: root, nft,
// openssl and go for the control plane.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { missingPrerequisites } from '../../bench/cluster-setup.js';

const CLUSTER = fileURLToPath(new URL('../../bench/cluster.js', import.meta.url));

interface Report {
  settings: { sources: number; blockedHosts: number };
  notes: { smallRun: { missing: number; requests: Record<string, number> } };
  figures: { id: string; value: number; extra?: Record<string, unknown> }[];
}

test('npm run bench:cluster at tiny sizes measures every figure and writes JSON', async (t) => {
  const why = missingPrerequisites();
  if (why.length) {
    if (process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why.join(', ')}`);
    return t.skip(`needs ${why.join(', ')}`);
  }
  const dir = await mkdtemp(join(tmpdir(), 'kps-bench-cluster-'));
  try {
    const out = join(dir, 'cluster.json');
    await new Promise<void>((resolve, reject) =>
      execFile(
        process.execPath,
        [CLUSTER, '--sources', '5', '--blocked-hosts', '50', '--scale-sources', '5', '--import', '50', '--trains', '2', '--out', out],
        // Without the runner's context: the test helpers the bench imports load node:test,
        // which in a child of the runner would report to it as if it were a test file.
        { timeout: 300_000, env: { ...process.env, NODE_TEST_CONTEXT: undefined } },
        (err, _stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
      ),
    );
    const doc = JSON.parse(await readFile(out, 'utf8')) as Report;
    const byId = new Map(doc.figures.map((f) => [f.id, f]));
    for (const id of ['latency.local.p50', 'latency.node3.p99', 'operator.start.reconciledMs', 'agent.start.all', 'operator.rss', 'agent.rss', 'scale.latency.node3.p50', 'etcd.size', 'import.latency.node3.p50'])
      assert.ok(Number.isFinite(byId.get(id)?.value) && byId.get(id)!.value > 0, `${id} missing or not positive`);
    // Every probe reached every node's set, and each detection made a BlockedHost through the counted client.
    assert.equal(doc.notes.smallRun.missing, 0);
    assert.equal(doc.notes.smallRun.requests['create blockedhosts 201'], 5);
    assert.ok(byId.get('requests.per-detection')!.value >= 2);
    // The fast-path part: trains counted on every node, with the raw path as its baseline.
    for (const id of ['fastpath.node1.p50', 'fastpath.node3.p99', 'fastpath.raw.node1.p50', 'fastpath.probes-answered'])
      assert.ok(Number.isFinite(byId.get(id)?.value), `${id} missing`);
    // Every stage on the way to node 3's set was timed for every probe of part 1.
    for (const stage of ['detect-queue', 'report', 'token', 'judge', 'create', 'watch-event', 'netlink'])
      assert.equal(byId.get(`stage.${stage}.p50`)?.extra?.samples, 5, `stage ${stage}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
