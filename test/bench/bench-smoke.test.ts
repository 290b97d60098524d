// The benchmark still runs and writes its JSON (figures are not asserted: timing is not a test).
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const RUN = fileURLToPath(new URL('../../bench/run.js', import.meta.url));

test('npm run bench -- --quick writes figures as JSON', async () => {
  const out = join(await mkdtemp(join(tmpdir(), 'kps-bench-')), 'engine.json');
  await new Promise<void>((resolve, reject) =>
    execFile(process.execPath, [RUN, '--quick', '--out', out], { timeout: 120_000 }, (err) => (err ? reject(err) : resolve())),
  );
  const doc = JSON.parse(await readFile(out, 'utf8')) as { figures: { name: string; value: number }[] };
  assert.ok(doc.figures.length > 10);
  assert.ok(doc.figures.some((f) => /observe/.test(f.name) && f.value > 0));
  assert.ok(doc.figures.every((f) => Number.isFinite(f.value)));
});
