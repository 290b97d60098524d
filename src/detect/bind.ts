// Bind mode (classic -tcp/-udp): listen on each tripwire port that no real service uses,
// and report whoever connects or sends a datagram. A TCP hit needs a completed handshake,
// so its source is real (verified); a UDP source can be forged, so a datagram comes with
// the address it was sent to and the interface it came in on: one not sent to one of this
// host's addresses (broadcast, multicast) is no probe of this host, and the interface is
// for the caller's reverse-path check.
import { loadAddon } from '../native/addon.js';
import { addressOf } from '../net/address.js';
import { normalizeIp } from '../net/ip.js';
import type { Protocol } from '../policy/types.js';
import type { Probe } from '../engine/probe.js';

export interface BindOptions {
  protocol: Protocol;
  ports: readonly number[];
  /** Sent on each TCP connection before it is closed; empty sends nothing. */
  banner: string;
  /** Whether a datagram's destination is one of this host's own addresses. */
  isLocal: (destination: string) => boolean;
  onProbe: (probe: Probe) => void;
  /** A datagram not sent to this host: counted, never a probe. */
  onNotLocal: () => void;
}

export interface BindReport {
  bound: number[];
  /** Ports a real service already uses: not watched. */
  inUse: number[];
  failed: { port: number; error: string }[];
}

/**
 * The native listeners (src/native/tripwire.c): accept4() keeps a TCP peer's address;
 * a datagram comes with its destination and interface ("" and 0 when the kernel did not say).
 */
interface NativeTripwire {
  listen(port: number, banner: Buffer, onConnection: (address: string) => void): { close(): void };
  listenUdp(port: number, onDatagram: (source: string, destination: string, ifindex: number) => void): { close(): void };
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

  /** One dual-stack socket per port (IPv4 only on hosts without IPv6), in native code. */
  private listen(port: number): Listener {
    const handle =
      this.options.protocol === 'tcp'
        ? native.listen(port, Buffer.from(this.options.banner ? `${this.options.banner}\n` : ''), (address) => this.connection(address, port))
        : native.listenUdp(port, (source, destination, ifindex) => this.datagram(source, destination, ifindex, port));
    return {
      close: (done) => {
        handle.close();
        done();
      },
    };
  }

  private connection(address: string, port: number): void {
    const source = addressOf(address);
    if (source) this.options.onProbe({ time: Date.now(), protocol: 'tcp', mode: 'bind', source, port, type: 'connect', verified: true });
  }

  private datagram(address: string, to: string, ifindex: number, port: number): void {
    const source = addressOf(address);
    if (!source) return;
    const destination = to ? normalizeIp(to) : null;
    if (destination && !this.options.isLocal(destination)) return this.options.onNotLocal();
    this.options.onProbe({
      time: Date.now(),
      protocol: 'udp',
      mode: 'bind',
      source,
      port,
      type: 'udp',
      verified: false,
      ...(destination ? { destination } : {}),
      ...(ifindex ? { ifindex } : {}),
    });
  }
}
