// hosts.deny (classic KILL_HOSTS_DENY): the product's own lines only, writes serialised
// within a process and across processes, removal atomic (src/respond/hosts-deny.ts).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { addHostsDenyLine, removeHostsDenyLine } from '../../src/respond/hosts-deny.js';
import { runProgram } from '../../src/respond/run-program.js';
import { prerequisites } from '../../support/prereq.js';

const MODULE = new URL('../../src/respond/hosts-deny.js', import.meta.url).href;
const line = (address: string): string => `ALL: ${address} : DENY`;
const rules = (text: string): string[] => text.split('\n').filter((l) => l && !l.startsWith('#'));

async function hostsDeny(content: string): Promise<string> {
  const path = join(await mkdtemp(join(tmpdir(), 'kps-hd-')), 'hosts.deny');
  await writeFile(path, content);
  return path;
}

test('hosts.deny: lifting a block never removes the admin\'s identical line', async () => {
  const path = await hostsDeny('# site rules\nALL: 203.0.113.0/24\nALL: 198.18.0.9 : DENY\n');
  await addHostsDenyLine(path, line('198.18.0.9'));
  await removeHostsDenyLine(path, line('198.18.0.9'));
  assert.deepEqual(rules(await readFile(path, 'utf8')), ['ALL: 203.0.113.0/24', 'ALL: 198.18.0.9 : DENY']);
});

test('hosts.deny: add once, remove only our line, comments and other lines untouched', async () => {
  const path = await hostsDeny('# site rules\nALL: 203.0.113.0/24');
  await addHostsDenyLine(path, line('198.18.0.9'));
  await addHostsDenyLine(path, line('198.18.0.9'));
  assert.deepEqual(rules(await readFile(path, 'utf8')), ['ALL: 203.0.113.0/24', 'ALL: 198.18.0.9 : DENY']);
  await removeHostsDenyLine(path, line('198.18.0.9'));
  assert.equal(await readFile(path, 'utf8'), '# site rules\nALL: 203.0.113.0/24\n');
});

test('hosts.deny: concurrent adds and removes in one process lose no line', async () => {
  const path = await hostsDeny('ALL: 203.0.113.0/24\n');
  const keep = Array.from({ length: 40 }, (_, i) => line(`198.18.1.${i + 1}`));
  const drop = Array.from({ length: 40 }, (_, i) => line(`198.18.2.${i + 1}`));
  await Promise.all(drop.map((l) => addHostsDenyLine(path, l)));
  await Promise.all([...keep.map((l) => addHostsDenyLine(path, l)), ...drop.map((l) => removeHostsDenyLine(path, l))]);
  assert.deepEqual(rules(await readFile(path, 'utf8')).sort(), ['ALL: 203.0.113.0/24', ...keep].sort());
});

test('hosts.deny: two processes writing at once lose no line', async () => {
  const path = await hostsDeny('ALL: 203.0.113.0/24\n');
  const writer = (prefix: string, remove: boolean) => `
    import { addHostsDenyLine, removeHostsDenyLine } from ${JSON.stringify(MODULE)};
    for (let i = 1; i <= 60; i++) {
      const l = 'ALL: ${prefix}.' + i + ' : DENY';
      await addHostsDenyLine(${JSON.stringify(path)}, l);
      if (${remove}) await removeHostsDenyLine(${JSON.stringify(path)}, l);
    }`;
  const run = (script: string) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let err = '';
      child.stderr.on('data', (d) => (err += d));
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}: ${err}`))));
    });
  await Promise.all([run(writer('198.18.3', false)), run(writer('198.18.4', true))]);
  const expected = ['ALL: 203.0.113.0/24', ...Array.from({ length: 60 }, (_, i) => line(`198.18.3.${i + 1}`))];
  assert.deepEqual(rules(await readFile(path, 'utf8')).sort(), expected.sort());
});

test('hosts.deny: a reader never sees the file without the admin\'s lines while blocks come and go', async () => {
  const admin = Array.from({ length: 200 }, (_, i) => `ALL: 203.0.${i}.0/24`);
  const path = await hostsDeny(`${admin.join('\n')}\n`);
  const reader = spawn(process.execPath, [
    '-e',
    `const fs = require('fs'); let bad = 0, reads = 0;
     const t = setInterval(() => {}, 1000);
     process.stdin.on('data', () => { clearInterval(t); console.log(JSON.stringify({ bad, reads })); process.exit(0); });
     (function loop() {
       for (let i = 0; i < 50; i++) { reads++; const text = fs.readFileSync(${JSON.stringify(path)}, 'utf8'); if (!text.includes('ALL: 203.0.199.0/24')) bad++; }
       setImmediate(loop);
     })();`,
  ]);
  let out = '';
  reader.stdout.on('data', (d) => (out += d));
  for (let i = 1; i <= 60; i++) {
    await addHostsDenyLine(path, line(`198.18.5.${i}`));
    await removeHostsDenyLine(path, line(`198.18.5.${i}`));
  }
  reader.stdin.end('stop\n');
  await new Promise((r) => reader.on('close', r));
  const { bad, reads } = JSON.parse(out) as { bad: number; reads: number };
  assert.ok(reads > 0);
  assert.equal(bad, 0, `${bad} of ${reads} reads saw a partial file`);
  assert.deepEqual(rules(await readFile(path, 'utf8')), admin);
});

test('hosts.deny under systemd (ProtectSystem=strict, ReadWritePaths= of the file): rewritten in place, lock elsewhere', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['unshare', 'mount'] })) return;
  const path = await hostsDeny('ALL: 203.0.113.0/24\n');
  const etc = join(path, '..');
  const state = await mkdtemp(join(tmpdir(), 'kps-state-'));
  const options = JSON.stringify({ lockDir: state });
  const script = `
    import { addHostsDenyLine, removeHostsDenyLine } from ${JSON.stringify(MODULE)};
    await addHostsDenyLine(${JSON.stringify(path)}, 'ALL: 198.18.0.9 : DENY', ${options});
    await addHostsDenyLine(${JSON.stringify(path)}, 'ALL: 198.18.0.10 : DENY', ${options});
    await removeHostsDenyLine(${JSON.stringify(path)}, 'ALL: 198.18.0.9 : DENY', ${options});`;
  // As systemd sets it up, in a mount namespace of its own: the directory read-only, the
  // file a writable bind mount of itself, so rename(2) over it cannot work.
  const setup = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && mount --bind "$2" "$2" && mount -o remount,bind,rw "$2"';
  await runProgram(['unshare', '--mount', '--propagation', 'private', 'sh', '-c', `${setup} && exec "$3" --input-type=module -e "$4"`, 'sh', etc, path, process.execPath, script]);
  assert.deepEqual(rules(await readFile(path, 'utf8')), ['ALL: 203.0.113.0/24', 'ALL: 198.18.0.10 : DENY']);
});
