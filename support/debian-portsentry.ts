// Debian's real portsentry package, for tests that check the classic converter against the
// file users actually have. Downloaded once with apt and cached between runs.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

function cacheDir(): string {
  return path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'kube-portsentry', 'debian-portsentry');
}

const complete = (root: string): boolean =>
  existsSync(path.join(root, 'etc/portsentry/portsentry.conf')) && existsSync(path.join(root, 'usr/sbin/portsentry'));

async function obtain(): Promise<string> {
  const dir = cacheDir();
  const root = path.join(dir, 'root');
  if (complete(root)) return root;
  await mkdir(dir, { recursive: true });
  const download = await mkdtemp(path.join(os.tmpdir(), 'debian-portsentry-'));
  // Extract beside the cache and rename into place, so a crash never leaves a half tree.
  const staging = path.join(dir, `root.${process.pid}.tmp`);
  try {
    await run('apt-get', ['download', 'portsentry'], { cwd: download, timeout: 180_000 });
    const debs = (await readdir(download)).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) throw new Error(`apt-get download left ${debs.length} .deb files`);
    await rm(staging, { recursive: true, force: true });
    await run('dpkg-deb', ['-x', path.join(download, debs[0]!), staging], { timeout: 60_000 });
    if (!complete(staging)) throw new Error(`${debs[0]} lacks etc/portsentry/portsentry.conf or usr/sbin/portsentry`);
    await writeFile(path.join(staging, '.package'), `${debs[0]}\n`);
    // An incomplete tree is a leftover of an interrupted run; a complete one is another process's.
    if (!complete(root)) await rm(root, { recursive: true, force: true });
    try {
      await rename(staging, root);
    } catch (err) {
      // Another test process may have won the race; its tree is as good as ours.
      if (!complete(root)) throw err;
    }
    return root;
  } finally {
    await rm(download, { recursive: true, force: true });
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * The extraction root of Debian's portsentry package (`${root}/etc/portsentry/portsentry.conf`,
 * `${root}/usr/sbin/portsentry`), or why it cannot be had. In CI a missing package fails.
 */
export async function debianPortsentry(): Promise<{ root: string } | { skip: string }> {
  try {
    return { root: await obtain() };
  } catch (err) {
    const reason = `Debian's portsentry package is not available (apt-get download portsentry): ${(err as Error).message}`;
    if (process.env.CI === 'true') throw new Error(reason, { cause: err });
    return { skip: reason };
  }
}
