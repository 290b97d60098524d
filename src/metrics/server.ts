// /metrics, /healthz and /readyz over plain HTTP.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  /** Null when healthy, else what is wrong. */
  health(): string | null;
  ready(): string | null;
}

export function parseListenAddress(text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address ${JSON.stringify(text)} is not host:port (e.g. 127.0.0.1:9109 or [::]:9109)`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}

export async function startMetricsServer(address: string, registry: Registry, health: HealthSource): Promise<Server> {
  const { host, port } = parseListenAddress(address);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const status = (problem: string | null): void => {
      res.writeHead(problem ? 503 : 200, { 'content-type': 'text/plain' }).end(problem ?? 'ok\n');
    };
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (path === '/healthz') status(health.health());
    else if (path === '/readyz') status(health.ready());
    else res.writeHead(404).end('not found\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
