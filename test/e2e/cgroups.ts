// Every process of the cluster (control plane, node daemons, shims, containers) lives under
// one cgroup, in every cgroup v1 hierarchy: the kubelets' cgroupRoot is below it, and the
// daemons start in it. Teardown kills what the pids hierarchy lists there until nothing is
// left, then removes the cgroups, so nothing the cluster ran can outlive it.
import { existsSync, readdirSync, readFileSync, rmdirSync, statSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

const ROOT = '/sys/fs/cgroup';

/** The v1 hierarchies (cpu, memory, pids, name=systemd, ...), not the empty v2 mount of a hybrid host. */
function hierarchies(): string[] {
  return readdirSync(ROOT)
    .map((d) => join(ROOT, d))
    .filter((d) => statSync(d).isDirectory() && !d.endsWith('/unified') && existsSync(join(d, 'cgroup.procs')));
}

/** Creates `path` (e.g. "kps-e2e/node1") in every hierarchy. */
export async function createCgroup(path: string): Promise<void> {
  for (const h of hierarchies()) {
    let dir = h;
    for (const part of path.split('/')) {
      const parent = dir;
      dir = join(dir, part);
      if (existsSync(dir)) continue;
      await mkdir(dir);
      // cpuset children start with no CPUs or memory nodes in v1; give them the parent's.
      if (existsSync(join(dir, 'cpuset.cpus'))) {
        await writeFile(join(dir, 'cpuset.cpus'), await readFile(join(parent, 'cpuset.cpus'), 'utf8'));
        await writeFile(join(dir, 'cpuset.mems'), await readFile(join(parent, 'cpuset.mems'), 'utf8'));
      }
    }
  }
}

/** The shell words that move the calling shell into `path` in every hierarchy. */
export function joinCgroupScript(path: string): string {
  return hierarchies()
    .map((h) => `echo $$ > '${join(h, path, 'cgroup.procs')}'`)
    .join('; ');
}

function pidsUnder(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...pidsUnder(join(dir, e.name)));
  return pids;
}

/** Every process in `path` or below it. */
export function cgroupPids(path: string): number[] {
  return pidsUnder(join(ROOT, 'pids', path));
}

/** Kills everything under `path` (SIGKILL, again until none is left), then removes the cgroups. */
export async function destroyCgroup(path: string): Promise<void> {
  for (let round = 0; ; round++) {
    const pids = cgroupPids(path);
    if (pids.length === 0) break;
    if (round > 100) throw new Error(`processes left in cgroup ${path}: ${pids.join(' ')}`);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const remove = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) remove(join(dir, e.name));
    for (let i = 0; ; i++) {
      try {
        rmdirSync(dir);
        return;
      } catch (err) {
        // A cgroup whose last task just died can stay busy for a moment.
        if (i > 50) throw err;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  };
  for (const h of hierarchies()) remove(join(h, path));
}
