// One real cluster per machine: its namespaces, cgroup and state directory have fixed names,
// so a second run would tear the first one down. A run takes this lock before bringing its
// cluster up and waits while a live process holds it; a holder that died leaves it free.
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs';

const RUN_LOCK = '/run/kps-e2e.lock';

function holder(lock: string): number | null {
  try {
    const pid = Number(readFileSync(lock, 'utf8').trim());
    if (!Number.isInteger(pid) || pid <= 0) return null;
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

export async function acquireRunLock(log: (line: string) => void, { lock = RUN_LOCK, timeoutMs = 45 * 60_000, pollMs = 2000 } = {}): Promise<() => void> {
  const deadline = Date.now() + timeoutMs;
  let told = false;
  for (;;) {
    try {
      writeFileSync(lock, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = holder(lock);
      if (pid === null) {
        unlinkSync(lock); // its holder is gone
        continue;
      }
      if (Date.now() > deadline) throw new Error(`another real-cluster run (pid ${pid}) still holds ${lock}`);
      if (!told) log(`waiting for the real-cluster run of pid ${pid} to end (${lock})`);
      told = true;
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }
  const release = () => {
    if (holder(lock) === process.pid) unlinkSync(lock);
  };
  process.once('exit', release);
  return release;
}
