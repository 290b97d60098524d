// Programs run without a shell (src/respond/run-program.ts).
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runProgram } from '../../src/respond/run-program.js';

test('commands run without a shell: metacharacters arrive as one literal argument', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kps-cmd-'));
  const marker = join(dir, 'pwned');
  const args = [`; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, 'a\nb', '*'];
  const { stdout } = await runProgram([process.execPath, '-e', 'console.log(JSON.stringify(process.argv.slice(1)))', ...args]);
  assert.deepEqual(JSON.parse(stdout), args);
  await assert.rejects(readFile(marker), { code: 'ENOENT' });
});

test('a failing or missing program is an error naming it', async () => {
  await assert.rejects(runProgram(['/nonexistent/kps-program']), /kps-program/);
  await assert.rejects(runProgram([process.execPath, '-e', 'process.stderr.write("boom"); process.exit(3)']), /failed \(3\): boom/);
});
