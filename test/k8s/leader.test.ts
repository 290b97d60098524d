// Leader election when the leader's API traffic stalls: two operator processes against a
// real API server, the leader's through a proxy that stops forwarding (connections stay
// open, nothing moves, as behind a hung load balancer). The other replica takes over; the
// stalled one must have stopped acting before that, by its own clock, not once its stuck
// requests return.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { freePort } from '../../support/free-port.js';
import { useControlPlane } from '../../support/control-plane.js';
import { OPERATOR_NS, prepareCluster } from '../../support/operator.js';
import { CLI, SentryProcess, type LogLine } from '../../support/sentry-process.js';

const LEASE_MS = 3000;

/**
 * Forwards TCP to the API server until paused; paused, it holds whatever either side sends
 * (connections stay open, nothing moves), and passes it on when resumed.
 */
class StallingProxy {
  private readonly held: (() => void)[] = [];
  private readonly sockets = new Set<Socket>();
  private paused = false;
  private constructor(private readonly server: Server) {}

  static async start(port: number, target: number): Promise<StallingProxy> {
    const server = createServer();
    const proxy = new StallingProxy(server);
    server.on('connection', (inbound) => {
      const outbound = connect(target, '127.0.0.1');
      const forward = (from: Socket, to: Socket) =>
        from.on('data', (chunk: Buffer) => {
          if (proxy.paused) proxy.held.push(() => to.write(chunk));
          else to.write(chunk);
        });
      forward(inbound, outbound);
      forward(outbound, inbound);
      for (const s of [inbound, outbound]) {
        proxy.sockets.add(s);
        s.on('close', () => proxy.sockets.delete(s));
        s.on('error', () => {
          inbound.destroy();
          outbound.destroy();
        });
      }
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    return proxy;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const send of this.held.splice(0)) send();
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server.close(r));
  }
}

const at = (l: LogLine) => Date.parse(String(l.time));

describe('leader election under a stalled API connection', { concurrency: false }, () => {
  const processes: SentryProcess[] = [];
  let proxy: StallingProxy | undefined;
  let dir: string | undefined;
  const state = useControlPlane(prepareCluster, {}, async () => {
    for (const p of processes) await p.stop();
    await proxy?.stop();
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  test('the stalled leader stops acting before the other replica starts; never two at once', async (t) => {
    const cp = state.cp;
    if (!cp) return t.skip(state.why);
    dir = await mkdtemp(join(tmpdir(), 'kps-leader-'));
    const proxyPort = await freePort();
    proxy = await StallingProxy.start(proxyPort, Number(new URL(cp.url).port));
    const config = JSON.parse(await readFile(cp.kubeconfig, 'utf8')) as { clusters: { cluster: { server: string } }[] };
    config.clusters[0]!.cluster.server = `https://127.0.0.1:${proxyPort}`;
    const viaProxy = join(dir, 'proxied.kubeconfig');
    await writeFile(viaProxy, JSON.stringify(config));

    const metricsPorts: number[] = [];
    const start = async (name: string, kubeconfig: string) => {
      const metrics = await freePort();
      metricsPorts.push(metrics);
      const args = [
        CLI, 'operator', '--namespace', OPERATOR_NS, '--identity', name, '--kubeconfig', kubeconfig, '--lease-duration', `${LEASE_MS / 1000}s`,
        '--listen-address', `127.0.0.1:${await freePort()}`, '--metrics-address', `127.0.0.1:${metrics}`, '--log-level', 'debug',
      ];
      const p = SentryProcess.attach(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] }));
      processes.push(p);
      return p;
    };
    const a = await start('stalled', viaProxy);
    const aLeads = await a.waitFor((l) => l.msg === 'became leader', 20_000);
    const b = await start('healthy', cp.kubeconfig);
    await b.waitFor((l) => l.msg === 'operator ready', 20_000);
    await new Promise((r) => setTimeout(r, LEASE_MS)); // b has seen a renew the lease

    // a's own view of itself, sampled from its metrics (served locally, no API needed).
    const samples: { at: number; leader: boolean }[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const text = await fetch(`http://127.0.0.1:${metricsPorts[0]}/metrics`).then((r) => r.text(), () => null);
        if (text !== null) samples.push({ at: Date.now(), leader: /^portsentry_leader 1$/m.test(text) });
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const stalled = Date.now();
    proxy.pause();
    const bLeads = await b.waitFor((l) => l.msg === 'became leader', 30_000);
    // Keep a stalled a while after the takeover, then let its traffic through again.
    await new Promise((r) => setTimeout(r, LEASE_MS));
    proxy.resume();
    await new Promise((r) => setTimeout(r, LEASE_MS));
    sampling = false;
    await sampler;

    const aLost = a.lines.find((l) => l.msg.startsWith('leadership lost'));
    const aEnd = aLost ? at(aLost) : Infinity;
    const bStart = at(bLeads);
    const overlap = samples.filter((s) => s.leader && s.at >= bStart);
    t.diagnostic(
      `a led from ${at(aLeads) - stalled} ms, stalled at 0, a stepped down at ${aEnd - stalled} ms, b led at ${bStart - stalled} ms; ` +
        `${overlap.length} samples of a still leading after b took over`,
    );
    assert.ok(aEnd < bStart, `a stepped down at ${aEnd - stalled} ms, after b took over at ${bStart - stalled} ms`);
    assert.equal(overlap.length, 0, 'a reported itself leader while b led');
    assert.ok(samples.some((s) => s.leader && s.at >= stalled), 'a was sampled leading after the stall began');
  });
});
