// The import-direction check (tools/check-imports.ts): it names each import a folder may
// not make, and exits 1 on them, so `npm test` fails; the repository itself passes it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { checkImports } from '../../tools/check-imports.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CHECK = fileURLToPath(new URL('../../tools/check-imports.js', import.meta.url));

async function tree(files: Record<string, string>): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'kps-imports-'));
  for (const [path, text] of Object.entries(files)) {
    await mkdir(dirname(join(root, path)), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

test('the repository keeps the import direction', () => {
  assert.deepEqual(checkImports(ROOT), []);
});

test('each forbidden import is named with its file and line, and the check exits 1', async (t) => {
  const root = await tree({
    'src/engine/rule.ts': "import { x } from '../net/ip.js';\nimport {\n  Kube,\n} from '../k8s/client.js';\nimport { readFile } from 'node:fs/promises';\n",
    'src/cluster/ok.ts': "import { y } from '../engine/rule.js';\nexport { z } from './other.js';\n",
    'src/operator/loop.ts': "import { Sentry } from '../sentry/sentry.js';\n",
    'src/policy/load.ts': "import { readFile } from 'node:fs/promises';\n",
    'bench/b.ts': "import { h } from '../test/helpers/x.js';\nimport { s } from '../support/netns.js';\n",
    'support/s.ts': "import { b } from '../bench/b.js';\n",
    'test/unit/t.ts': "import { b } from '../../bench/b.js';\nimport { s } from '../../support/s.js';\n",
  });
  t.after(() => rm(root, { recursive: true, force: true }));
  const found = checkImports(root).map((b) => `${b.file}:${b.line} ${b.target}: ${b.why}`).sort();
  assert.deepEqual(found, [
    'bench/b.ts:1 ../test/helpers/x.js: bench/ may not import test/ (shared helpers live in support/)',
    'src/engine/rule.ts:4 ../k8s/client.js: src/engine may not import src/k8s',
    'src/engine/rule.ts:5 node:fs/promises: src/engine/ holds pure rules: no I/O modules',
    'src/operator/loop.ts:1 ../sentry/sentry.js: src/operator may not import src/sentry',
    'support/s.ts:1 ../bench/b.js: support/ may not import bench/',
  ]);
  const run = await promisify(execFile)(process.execPath, [CHECK, root]).then(
    () => ({ code: 0, stderr: '' }),
    (err: { code: number; stderr: string }) => err,
  );
  assert.equal(run.code, 1);
  assert.match(run.stderr, /src\/operator\/loop\.ts:1: imports \.\.\/sentry\/sentry\.js: src\/operator may not import src\/sentry/);
  assert.match(run.stderr, /5 breach\(es\)/);
});
