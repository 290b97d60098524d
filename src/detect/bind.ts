// Bind mode (classic -tcp/-udp): listen on each tripwire port that no real service uses,
// and report whoever connects or sends a datagram. A TCP hit needs a completed handshake,
// so its source is real (verified); a UDP source can be forged.
import { createSocket } from 'node:dgram';
import { loadAddon } from '../native/addon.js';
import { addressOf } from '../net/address.js';
import type { Protocol } from '../policy/types.js';
import type { Probe } from '../engine/probe.js';

export interface BindOptions {
  protocol: Protocol;
  ports: readonly number[];
  /** Sent on each TCP connection before it is closed; empty sends nothing. */
  banner: string;
  onProbe: (probe: Probe) => void;
}

export interface BindReport {
  bound: number[];
  /** Ports a real service already uses: not watched. */
  inUse: number[];
  failed: { port: number; error: string }[];
}

/** The native TCP listener (src/native/tripwire.c): accept4() keeps the peer address. */
interface NativeTripwire {
  listen(port: number, banner: Buffer, onConnection: (address: string) => void): { close(): void };
}
const native = loadAddon<NativeTripwire>('tripwire');

type Listener = { close(done: () => void): void };

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? String(err);
}

export class BindDetector {
  private readonly listeners = new Map<number, Listener>();

  constructor(private readonly options: BindOptions) {}

  async start(): Promise<BindReport> {
    const report: BindReport = { bound: [], inUse: [], failed: [] };
    const results = await Promise.all(
      this.options.ports.map(async (port) => {
        try {
          this.listeners.set(port, await this.listen(port));
          return { port, ok: true as const };
        } catch (err) {
          return { port, ok: false as const, code: errorCode(err) };
        }
      }),
    );
    for (const r of results) {
      if (r.ok) report.bound.push(r.port);
      else if (r.code === 'EADDRINUSE') report.inUse.push(r.port);
      else report.failed.push({ port: r.port, error: r.code });
    }
    return report;
  }

  async stop(): Promise<void> {
    const all = [...this.listeners.values()];
    this.listeners.clear();
    await Promise.all(all.map((l) => new Promise<void>((resolve) => l.close(() => resolve()))));
  }

  /** One dual-stack socket per port; IPv4 only on hosts without IPv6. */
  private async listen(port: number): Promise<Listener> {
    if (this.options.protocol === 'tcp') return this.listenTcp(port);
    try {
      return await this.listenUdp(port, '::');
    } catch (err) {
      if (errorCode(err) !== 'EAFNOSUPPORT' && errorCode(err) !== 'EADDRNOTAVAIL') throw err;
      return this.listenUdp(port, '0.0.0.0');
    }
  }

  private report(address: string | undefined, port: number): void {
    const source = address ? addressOf(address) : null;
    if (!source) return;
    const tcp = this.options.protocol === 'tcp';
    this.options.onProbe({
      time: Date.now(),
      protocol: this.options.protocol,
      mode: 'bind',
      source,
      port,
      type: tcp ? 'connect' : 'udp',
      verified: tcp,
    });
  }

  private listenTcp(port: number): Listener {
    const banner = Buffer.from(this.options.banner ? `${this.options.banner}\n` : '');
    const handle = native.listen(port, banner, (address) => this.report(address, port));
    return {
      close: (done) => {
        handle.close();
        done();
      },
    };
  }

  private listenUdp(port: number, host: string): Promise<Listener> {
    return new Promise((resolve, reject) => {
      const socket = createSocket({ type: host === '::' ? 'udp6' : 'udp4', ipv6Only: false });
      socket.on('message', (_msg, rinfo) => this.report(rinfo.address, port));
      socket.once('error', reject);
      socket.bind({ port, address: host, exclusive: true }, () => {
        socket.off('error', reject);
        socket.on('error', () => undefined);
        resolve(socket);
      });
    });
  }
}
