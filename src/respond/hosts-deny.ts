// Classic KILL_HOSTS_DENY: a TCP wrappers line per blocked address. Only lines this
// sentry wrote are ever removed, and only when exactly equal.
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises';

export async function addHostsDenyLine(path: string, line: string): Promise<void> {
  const current = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return '';
    throw err;
  });
  if (current.split('\n').includes(line)) return;
  const sep = current && !current.endsWith('\n') ? '\n' : '';
  await appendFile(path, `${sep}${line}\n`);
}

export async function removeHostsDenyLine(path: string, line: string): Promise<void> {
  const current = await readFile(path, 'utf8');
  const lines = current.split('\n');
  const kept = lines.filter((l) => l !== line);
  if (kept.length === lines.length) return;
  // Replace atomically so a reader (tcpd) never sees a half-written file.
  const tmp = `${path}.kube-portsentry.tmp`;
  await writeFile(tmp, kept.join('\n'));
  await rename(tmp, path);
}
