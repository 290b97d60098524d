// The real-cluster suite's run lock: a second run waits for the first, and a lock whose
// holder died is taken over.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { acquireRunLock } from '../e2e/run-lock.js';

test('a second run waits until the first releases the lock', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kps-lock-'));
  const lock = join(dir, 'lock');
  try {
    const release = await acquireRunLock(() => {}, { lock });
    assert.equal((await readFile(lock, 'utf8')).trim(), String(process.pid));
    // The same process stands for a second run here: it must wait while a live pid holds it.
    const waiting: string[] = [];
    let second = false;
    const other = acquireRunLock((l) => waiting.push(l), { lock, pollMs: 20 }).then((r) => ((second = true), r));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(second, false, 'the second run went ahead while the first held the lock');
    assert.equal(waiting.length, 1, 'it says once what it waits for');
    release();
    (await other)();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a lock left by a process that died is taken over; waiting has a limit', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'kps-lock-'));
  const lock = join(dir, 'lock');
  try {
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid!;
    await new Promise((r) => child.once('exit', r));
    await writeFile(lock, `${pid}\n`);
    const release = await acquireRunLock(() => {}, { lock, pollMs: 20 });
    assert.equal((await readFile(lock, 'utf8')).trim(), String(process.pid));
    await assert.rejects(acquireRunLock(() => {}, { lock, pollMs: 20, timeoutMs: 100 }), /still holds/);
    release();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
