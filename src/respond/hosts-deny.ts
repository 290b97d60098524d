// Classic KILL_HOSTS_DENY: a TCP wrappers line per block, in a file others edit too. The
// sentry's lines carry a marker (hosts-deny-lines.ts) and only those are ever removed;
// every change holds a lock, so two writers never lose each other's lines, and replaces
// the file in one step.
import { mkdir, readFile, realpath } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { writeFileAtomic } from './atomic-file.js';
import { withFileLock } from './file-lock.js';
import { addOwnLine, ownLines, removeOwnLines } from './hosts-deny-lines.js';

async function readText(path: string): Promise<string> {
  return readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
}

/** The file itself, so a symbolic link (hosts.deny kept elsewhere) stays a link. */
const target = (path: string): Promise<string> => realpath(path).catch(() => path);

export interface HostsDenyOptions {
  /**
   * Where the lock file goes: a directory the sentry may write (its files directory). By
   * default next to the file, which systemd's ProtectSystem= leaves read-only.
   */
  lockDir?: string;
}

/** Reads, edits and replaces the file under its lock; `edit` returns null for no change. */
async function change<T>(
  path: string,
  options: HostsDenyOptions,
  edit: (text: string) => { text: string; result: T } | null,
  fallback: T,
): Promise<T> {
  const file = await target(path);
  if (options.lockDir) await mkdir(options.lockDir, { recursive: true, mode: 0o700 });
  const lock = options.lockDir ? join(options.lockDir, `${basename(file)}.lock`) : `${file}.kube-portsentry.lock`;
  return withFileLock(lock, async () => {
    const next = edit(await readText(file));
    if (!next) return fallback;
    // Under systemd's ReadWritePaths=/etc/hosts.deny the file cannot be replaced: rewritten in place.
    await writeFileAtomic(file, next.text, { inPlaceFallback: true });
    return next.result;
  });
}

export async function addHostsDenyLine(path: string, line: string, options: HostsDenyOptions = {}): Promise<void> {
  await change(path, options, (text) => {
    const next = addOwnLine(text, line);
    return next === null ? null : { text: next, result: undefined };
  }, undefined);
}

/** Removes the sentry's own `line`; an identical line without the marker is the admin's and stays. */
export async function removeHostsDenyLine(path: string, line: string, options: HostsDenyOptions = {}): Promise<void> {
  await removeHostsDenyLines(path, options, (l) => l === line);
}

/** Removes the sentry's own lines that `drop` picks (every one by default); returns them. */
export async function removeHostsDenyLines(
  path: string,
  options: HostsDenyOptions = {},
  drop: (line: string) => boolean = () => true,
): Promise<string[]> {
  return change(path, options, (text) => {
    const { text: next, removed } = removeOwnLines(text, drop);
    return removed.length ? { text: next, result: removed } : null;
  }, [] as string[]);
}

/** The sentry's own lines in the file. */
export async function listHostsDenyLines(path: string): Promise<string[]> {
  return ownLines(await readText(await target(path)));
}
