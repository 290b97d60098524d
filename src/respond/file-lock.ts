// Serialises the product's writes to one file: in this process by a queue per lock, and
// across processes (the sentry and an admin command) by a lock file created exclusively.
// A lock left by a process that died is taken over. The lock file appears with its holder
// already written in it (hard-linked from a private file), since a contender reading it
// empty could not tell a holder that is starting from one that died.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, readFile, stat, unlink, writeFile } from 'node:fs/promises';

/** How long an empty lock file may be a holder still writing it. */
const EMPTY_STALE_MS = 5_000;

const queues = new Map<string, Promise<unknown>>();

export class LockTimeoutError extends Error {
  override name = 'LockTimeoutError';
}

/** A process's start time (clock ticks after boot, /proc/PID/stat field 22) and whether it is a zombie. */
function processInfo(pid: number): { start: string; zombie: boolean } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { start: fields[19] ?? '', zombie: fields[0] === 'Z' };
  } catch {
    return null;
  }
}

/** What a lock file holds: the holder's pid and start time, so a reused pid is not taken for it. */
const holder = (): string => `${process.pid} ${processInfo(process.pid)?.start ?? ''}\n`;

/** Creates the lock file holding this process's line; false when it exists already. */
async function create(lockPath: string): Promise<boolean> {
  const own = `${lockPath}.${process.pid}.${randomBytes(4).toString('hex')}`;
  await writeFile(own, holder(), { mode: 0o600, flag: 'wx' });
  try {
    await link(own, lockPath);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    await unlink(own).catch(() => undefined);
  }
}

/**
 * True when the lock's holder (a "pid start" line) still runs. An empty file is a holder of an
 * older release between its create and its write: alive until the lock goes stale.
 */
function alive(text: string): boolean {
  if (!text.trim()) return true;
  const [pid, start] = text.trim().split(' ');
  const info = processInfo(Number(pid));
  return info !== null && !info.zombie && (!start || info.start === start);
}

/** True when the lock file's holder is gone (or the lock is older than any write could take). */
async function stale(lockPath: string, staleMs: number): Promise<boolean> {
  try {
    const [text, info] = await Promise.all([readFile(lockPath, 'utf8'), stat(lockPath)]);
    if (Date.now() - info.mtimeMs > staleMs) return true;
    return !alive(text);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // released meanwhile: retry
    throw err;
  }
}

async function acquire(lockPath: string, timeoutMs: number, staleMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
    if (await create(lockPath)) return;
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

/**
 * Takes the lock at `lockPath` for as long as the caller runs (a sentry and its files
 * directory): the pid of a live holder otherwise. A dead holder's lock is taken over.
 */
export async function holdLock(lockPath: string): Promise<{ release: () => Promise<void> } | { heldBy: number }> {
  for (;;) {
    if (await create(lockPath)) return { release: () => unlink(lockPath).catch(() => undefined) };
    const text = await readFile(lockPath, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null; // released meanwhile: try again
      throw err;
    });
    if (text === null) continue;
    // An empty file that stayed empty is a holder that died between create and write.
    if (!text.trim() && (await stale(lockPath, EMPTY_STALE_MS))) {
      await unlink(lockPath).catch(() => undefined);
      continue;
    }
    const pid = Number(text.split(' ')[0]) || 0;
    if (pid !== process.pid && alive(text)) return { heldBy: pid };
    await unlink(lockPath).catch(() => undefined);
  }
}
