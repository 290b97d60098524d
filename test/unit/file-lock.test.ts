// The cross-process lock (src/respond/file-lock.ts): a lock another process is creating is
// never taken over, a dead holder's lock is.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { holdLock, LockTimeoutError, withFileLock } from '../../src/respond/file-lock.js';

const lockIn = async (): Promise<string> => join(await mkdtemp(join(tmpdir(), 'kps-lock-')), 'file.lock');

test('file lock: a lock file still empty (its holder between create and write) is not taken over', async () => {
  const lock = await lockIn();
  await writeFile(lock, '');
  let ran = false;
  await assert.rejects(
    withFileLock(lock, async () => (ran = true), { timeoutMs: 300 }),
    LockTimeoutError,
  );
  assert.equal(ran, false, 'ran while another process was taking the lock');
  assert.deepEqual(await holdLock(lock), { heldBy: 0 });
});

test('file lock: a dead holder\'s lock is taken over', async () => {
  const lock = await lockIn();
  const dead = spawn(process.execPath, ['-e', '']);
  await new Promise((r) => dead.on('close', r));
  await writeFile(lock, `${dead.pid} 1\n`);
  assert.equal(await withFileLock(lock, async () => 'ran', { timeoutMs: 1000 }), 'ran');
  await writeFile(lock, `${dead.pid} 1\n`);
  const held = await holdLock(lock);
  assert.ok('release' in held);
  assert.equal((await readFile(lock, 'utf8')).split(' ')[0], String(process.pid));
  await held.release();
});

test('file lock: the lock file is never seen without its holder', async () => {
  const lock = await lockIn();
  // A watcher reads the lock as fast as it can while this process takes it 200 times.
  const watcher = spawn(process.execPath, ['-e', `
    const fs = require('fs'); let empty = 0, seen = 0;
    process.stdin.on('data', () => { console.log(JSON.stringify({ empty, seen })); process.exit(0); });
    process.stderr.write('ready\\n');
    (function loop() {
      for (let i = 0; i < 100; i++) { try { const t = fs.readFileSync(${JSON.stringify(lock)}, 'utf8'); seen++; if (!t.trim()) empty++; } catch {} }
      setImmediate(loop);
    })();`]);
  let out = '';
  watcher.stdout.on('data', (d) => (out += d));
  // Started (a loaded machine takes a while to start node): the locks below are all watched.
  await new Promise((r) => watcher.stderr.once('data', r));
  // Each held a millisecond, so the watcher's reads meet some of them.
  for (let i = 0; i < 200; i++) await withFileLock(lock, () => new Promise((r) => setTimeout(r, 1)));
  watcher.stdin.end('stop\n');
  await new Promise((r) => watcher.on('close', r));
  const { empty, seen } = JSON.parse(out) as { empty: number; seen: number };
  assert.ok(seen > 0, 'the watcher never saw the lock');
  assert.equal(empty, 0, `${empty} of ${seen} reads found the lock file empty`);
});
