// Serialises the product's writes to one file: in this process by a queue per lock, and
// across processes (the sentry and an admin command) by a lock file created exclusively.
// A lock left by a process that died is taken over.
import { open, readFile, stat, unlink } from 'node:fs/promises';

const queues = new Map<string, Promise<unknown>>();

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** True when the lock file's holder is gone (or the lock is older than any write could take). */
async function stale(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    const pid = Number(text.trim());
    if (Date.now() - info.mtimeMs > staleMs) return true;
    return Number.isInteger(pid) && pid > 0 && !alive(pid);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // released meanwhile: retry
    throw err;
  }
}

async function acquire(lockPath: string, timeoutMs: number, staleMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
    try {
      const handle = await open(lockPath, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    if (await stale(lockPath, staleMs)) {
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    if (Date.now() > deadline) throw new LockTimeoutError(`${lockPath} is held by another process (pid in the file) for over ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, wait));
  }
}

/** Runs `fn` holding the lock at `lockPath`; calls for one lock run one at a time, in order. */
export function withFileLock<T>(lockPath: string, fn: () => Promise<T>, options: { timeoutMs?: number; staleMs?: number } = {}): Promise<T> {
  const previous = queues.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    await acquire(lockPath, options.timeoutMs ?? 10_000, options.staleMs ?? 30_000);
    try {
      return await fn();
    } finally {
      await unlink(lockPath).catch(() => undefined);
    }
  });
  const tail = run.catch(() => undefined);
  queues.set(lockPath, tail);
  void tail.then(() => {
    if (queues.get(lockPath) === tail) queues.delete(lockPath);
  });
  return run;
}
