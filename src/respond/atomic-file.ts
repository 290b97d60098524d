// Replaces a file's content in one step: a temporary file in the same directory, flushed,
// given the old file's mode, then renamed over it, so a reader sees the old content or
// the new, never a mix, and a crash leaves one of the two.
import { randomBytes } from 'node:crypto';
import { chmod, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export interface AtomicWriteOptions {
  /** Mode of a file that does not exist yet; an existing file keeps its own. */
  mode?: number;
  /**
   * When the file cannot be replaced (it is a bind mount of its own, as systemd's
   * ReadWritePaths= of a single file makes it, or its directory is read-only), rewrite
   * it in place instead of failing.
   */
  inPlaceFallback?: boolean;
}

const CANNOT_REPLACE = new Set(['EBUSY', 'EXDEV', 'EROFS', 'EACCES', 'EPERM']);

export async function writeFileAtomic(path: string, text: string, options: AtomicWriteOptions = {}): Promise<void> {
  const mode = await stat(path).then(
    (s) => s.mode & 0o7777,
    () => options.mode ?? 0o644,
  );
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  let created = false;
  try {
    const handle = await open(tmp, 'wx', mode);
    created = true;
    try {
      await handle.writeFile(text);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await chmod(tmp, mode);
    await rename(tmp, path);
    created = false;
  } catch (err) {
    if (created) await unlink(tmp).catch(() => undefined);
    if (!options.inPlaceFallback || !CANNOT_REPLACE.has((err as NodeJS.ErrnoException).code ?? '')) throw err;
    await rewriteInPlace(path, text);
  }
}

/** One write from the start, then the end cut off: readers may see the change half done. */
async function rewriteInPlace(path: string, text: string): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    const bytes = Buffer.from(text);
    await handle.write(bytes, 0, bytes.length, 0);
    await handle.truncate(bytes.length);
    await handle.sync();
  } finally {
    await handle.close();
  }
}
