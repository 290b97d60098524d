// The benchmarks still run and write their JSON (figures are not asserted against times:
// timing is not a test; only that each part measured something).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { debianPortsentry } from '../../support/debian-portsentry.js';
import { prerequisites } from '../../support/prereq.js';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

test('npm run bench -- --quick writes figures as JSON', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'kps-bench-')), 'engine.json');
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [RUN, '--quick', '--out', out], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve())),
  );
  const doc = JSON.parse(await readFile(out, 'utf8')) as { figures: { name: string; value: number }[] };
  assert.ok(doc.figures.length > 10);
  assert.ok(doc.figures.some((f) => /decide/.test(f.name) && f.value > 0));
  assert.ok(doc.figures.every((f) => Number.isFinite(f.value)));
});

const DETECTOR = fileURLToPath(new URL('../../bench/detector.js', import.meta.url));

/** Runs one part of bench:detector, tiny; returns its figures by id. */
async function detectorPart(args: string[]): Promise<Map<string, { value: number; ratio?: number }>> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-bench-'));
  try {
    const out = join(dir, 'detector.json');
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, [DETECTOR, ...args, '--out', out], { timeout: 300_000 }, (err, _stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(),
      ),
    );
    const doc = JSON.parse(await readFile(out, 'utf8')) as { figures: { id: string; value: number; ratio?: number }[] };
    return new Map(doc.figures.map((f) => [f.id, f]));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('bench:detector --part portsentry runs Debian portsentry and the sentry side by side', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'hping3', 'python3', 'chroot', 'ldd'] })) return;
  const got = await debianPortsentry();
  if ('skip' in got) {
    t.skip(got.skip);
    return;
  }
  const figures = await detectorPart(['--part', 'portsentry', '--seconds', '1']);
  for (const [theirs, ours] of [
    ['portsentry-stcp', 'portsentry.stealth'],
    ['portsentry-atcp', 'portsentry.advanced'],
  ]) {
    // Both read the flood (portsentry's count comes from its syslog lines), both used CPU.
    for (const id of [`${theirs}.read`, `${ours}.read`, `${theirs}.cpu-per-million`, `${ours}.cpu-per-million`, `${theirs}.rss-peak`, `${ours}.rss-flood`])
      assert.ok(figures.get(id)!.value > 0, `${id} = ${figures.get(id)?.value}`);
    assert.ok(Number.isFinite(figures.get(`${ours}.cpu-per-million`)!.ratio), `${ours} has a ratio to portsentry`);
    assert.ok(figures.get(`${theirs}.syslog-per-packet`)!.value >= 1, 'portsentry logs every packet it reads');
  }
});

test('bench:detector --part blockset measures additions, rebuilds and unblocked traffic', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'hping3', 'nft', 'ipset', 'iptables'] })) return;
  const figures = await detectorPart(['--part', 'blockset', '--seconds', '1', '--entries', '2000', '--adds', '20']);
  for (const backend of ['nftables', 'iptables']) {
    for (const id of ['add.p50.empty', 'add.p50.full', 'rebuild.fromEmpty.batched', 'rebuild.kept.single', 'unblocked.full'].map((f) => `blockset.${backend}.${f}`))
      assert.ok(figures.get(id)!.value > 0, `${id} = ${figures.get(id)?.value}`);
    for (const id of ['add.p99.full', 'rebuild.kept.batched', 'unblocked.full'].map((f) => `blockset.${backend}.${f}`))
      assert.ok(Number.isFinite(figures.get(id)!.ratio), `${id} has a ratio`);
  }
});

test('bench:detector --part ceiling finds a zero-drop rate for each receiver, against portsentry', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'hping3', 'nft', 'gcc', 'taskset', 'python3', 'chroot', 'ldd'] })) return;
  const got = await debianPortsentry();
  if ('skip' in got) {
    t.skip(got.skip);
    return;
  }
  // No bisection: the doubling (or halving) stops at the first change of outcome.
  const figures = await detectorPart(['--part', 'ceiling', '--seconds', '1', '--start-rate', '200000', '--steps', '0']);
  assert.ok(figures.get('ceiling.baseline.hping3')!.value > 0);
  assert.ok(Number.isFinite(figures.get('ceiling.baseline.sender')!.ratio), 'the sender has a ratio to hping3');
  for (const kind of ['portsentry', 'raw', 'fastpath']) {
    assert.ok(figures.get(`ceiling.${kind}.rate`)!.value > 0, `${kind}: a rate with nothing lost`);
    assert.equal(figures.get(`ceiling.${kind}.drops`)!.value, 0, `${kind}: nothing lost at its ceiling`);
    assert.ok(figures.get(`ceiling.${kind}.cpu`)!.value > 0, `${kind}: CPU per packet at its ceiling`);
  }
  for (const kind of ['raw', 'fastpath']) assert.ok(Number.isFinite(figures.get(`ceiling.${kind}.cpu`)!.ratio), `${kind} has a ratio to portsentry`);
});
