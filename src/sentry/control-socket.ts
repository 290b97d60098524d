// The running sentry's control socket: a Unix socket only root can use (mode 0600 in a
// directory of mode 0700 when the sentry makes it), one JSON request per connection and
// one JSON reply. The admin commands try it first, and work from the record and the kernel
// when no sentry answers.
import { chmod, mkdir, stat, unlink } from 'node:fs/promises';
import { connect, createServer, type Server } from 'node:net';
import { dirname } from 'node:path';

export type Reply = { ok: true; [key: string]: unknown } | { ok: false; error: string };

const MAX_REQUEST = 64 * 1024;

export class ControlSocketError extends Error {
  override name = 'ControlSocketError';
}

/** Sends one request; null when no sentry listens on `path` (no socket, or a stale one). */
export function askSentry(path: string, request: unknown, timeoutMs = 30_000): Promise<Reply | null> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ControlSocketError(`the sentry on ${path} did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.end(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => (data += chunk));
    socket.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(data) as Reply);
      } catch {
        reject(new ControlSocketError(`the sentry on ${path} answered something that is not JSON`));
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') resolve(null);
      else if (err.code === 'EACCES') reject(new ControlSocketError(`${path}: permission denied (the control socket is root's only)`));
      else reject(new ControlSocketError(`${path}: ${err.message}`));
    });
  });
}

/**
 * Listens on `path` and answers each request with `handle`. Refuses when another sentry
 * answers there; a socket left by a sentry that died is replaced.
 */
export async function serveControl(path: string, handle: (request: unknown) => Promise<Reply>): Promise<{ close(): Promise<void> }> {
  const dir = dirname(path);
  const made = await stat(dir).then(
    () => false,
    () => true,
  );
  if (made) await mkdir(dir, { recursive: true, mode: 0o700 });
  if (await askSentry(path, { command: 'status' }, 2000).catch(() => null))
    throw new ControlSocketError(`another sentry answers on ${path}: stop it first, or give this one --socket`);
  await unlink(path).catch(() => undefined);
  const server: Server = createServer({ allowHalfOpen: true }, (socket) => {
    let data = '';
    socket.setEncoding('utf8');
    socket.setTimeout(10_000, () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('data', (chunk: string) => {
      data += chunk;
      if (data.length > MAX_REQUEST) socket.destroy();
    });
    socket.on('end', () => {
      let request: unknown;
      try {
        request = JSON.parse(data);
      } catch {
        socket.end(`${JSON.stringify({ ok: false, error: 'the request is not JSON' })}\n`);
        return;
      }
      handle(request).then(
        (reply) => socket.end(`${JSON.stringify(reply)}\n`),
        (err: Error) => socket.end(`${JSON.stringify({ ok: false, error: err.message })}\n`),
      );
    });
  });
  // Created with mode 0600 from the start: no moment in which another user could connect.
  const umask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } finally {
    process.umask(umask);
  }
  await chmod(path, 0o600);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        void unlink(path).catch(() => undefined);
      }),
  };
}
