// A TCP prober for the time a sentry is down or restarting: from the scanner (or one of its
// addresses), a connection attempt to a real service every 100 ms until told to stop, then
// how many were answered (open, refused) and how many went unanswered (dropped).
import { spawn } from 'node:child_process';

export interface ProbeCounts {
  open: number;
  refused: number;
  timeout: number;
}

export function startProber(ns: string, target: { host: string; port: number; localAddress?: string }): { stop(): Promise<ProbeCounts> } {
  const script = `
    const net = require('node:net');
    const options = ${JSON.stringify({ host: target.host, port: target.port, ...(target.localAddress ? { localAddress: target.localAddress } : {}) })};
    const counts = { open: 0, refused: 0, timeout: 0 };
    let stop = false;
    process.stdin.on('data', () => (stop = true));
    process.stdin.on('end', () => (stop = true));
    const once = () => new Promise((resolve) => {
      const s = net.connect(options);
      const done = (r) => { s.destroy(); resolve(r); };
      s.setTimeout(300, () => done('timeout'));
      s.on('connect', () => done('open'));
      s.on('error', (e) => done(e.code === 'ECONNREFUSED' ? 'refused' : 'timeout'));
    });
    (async () => {
      while (!stop) {
        counts[await once()]++;
        await new Promise((r) => setTimeout(r, 100));
      }
      console.log(JSON.stringify(counts));
      process.exit(0);
    })();`;
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  return {
    async stop() {
      child.stdin.end('stop\n');
      await closed;
      return JSON.parse(out) as ProbeCounts;
    },
  };
}
