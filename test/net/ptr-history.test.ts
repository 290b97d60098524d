// With response.resolveHosts (classic RESOLVE_HOST=1) the classic history line is
// "Host: <name>/<address>", as PortSentry wrote it, and fail2ban's stock portsentry filter
// bans the host after the slash: `failregex = \/<HOST> Port\: [0-9]+ (TCP|UDP) Blocked$`
// (fail2ban config/filter.d/portsentry.conf). The name is the scanner's own PTR record, so
// it must never stand where the address goes, and a name that is an address literal is no
// name at all (the address is written in its place).
// Real DNS over UDP (a resolver on the loopback of a network namespace of our own, named in
// /etc/netns/<ns>/resolv.conf as test/net/abuse.test.ts does), the real Responder writing
// the real history file.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { runProgram } from '../../src/respond/run-program.js';
import { deleteNamespace } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const SCANNER = '198.51.100.7';
const RESPONDER = fileURLToPath(new URL('../../src/respond/responder.js', import.meta.url));
const VALIDATE = fileURLToPath(new URL('../../src/policy/validate.js', import.meta.url));
const LOGGER = fileURLToPath(new URL('../../src/log/logger.js', import.meta.url));
const METRICS = fileURLToPath(new URL('../../src/metrics/metrics.js', import.meta.url));
const ADDRESS = fileURLToPath(new URL('../../src/net/address.js', import.meta.url));
/** fail2ban's stock filter, with <HOST> as fail2ban expands it for an IPv4 address. */
const FAILREGEX = /\/(\d+\.\d+\.\d+\.\d+) Port: [0-9]+ (TCP|UDP) Blocked$/;

/** The history line the real Responder writes for a block of SCANNER when its PTR record says `ptr`. */
async function historyLine(ns: string, dir: string, ptr: string): Promise<string> {
  const history = join(dir, `history-${ptr}`);
  const script = join(dir, `run-${ptr}.mjs`);
  await writeFile(
    script,
    `import { createSocket } from 'node:dgram';
     import { Responder } from ${JSON.stringify(RESPONDER)};
     import { validateSpec } from ${JSON.stringify(VALIDATE)};
     import { createLogger } from ${JSON.stringify(LOGGER)};
     import { Metrics } from ${JSON.stringify(METRICS)};
     import { addressOf } from ${JSON.stringify(ADDRESS)};
     const server = createSocket('udp4');
     server.on('message', (q, peer) => {
       let i = 12;
       while (i < q.length && q[i] !== 0) i += 1 + q[i];
       const qend = i + 5;
       const rdata = Buffer.concat([...${JSON.stringify(ptr)}.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
       const header = Buffer.from([q[0], q[1], 0x84, 0x00, 0, 1, 0, 1, 0, 0, 0, 0]);
       const answer = Buffer.concat([Buffer.from([0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 60, 0, rdata.length]), rdata]);
       server.send(Buffer.concat([header, q.subarray(12, qend), answer]), peer.port, peer.address);
     });
     await new Promise((r) => server.bind(53, '127.0.0.1', r));
     const v = validateSpec({ response: { resolveHosts: true } });
     const responder = new Responder({ response: v.value.response, files: { history: ${JSON.stringify(history)}, blocked: '' }, firewall: null, logger: createLogger('silent'), metrics: new Metrics(false), routeMark: { metric: 157 } });
     await responder.start();
     const now = Date.now();
     await responder.respond({ source: addressOf(${JSON.stringify(SCANNER)}), action: 'block', protocol: 'tcp', port: 1, mode: 'bind', type: 'connect', verified: true, since: now, until: now + 3600000 });
     server.close();`,
  );
  await runProgram(['ip', 'netns', 'exec', ns, process.execPath, script], { timeoutMs: 30_000 });
  return (await readFile(history, 'utf8')).trim();
}

test('fail2ban bans the scanner whatever its PTR record says; an address literal is never written as its name', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip'] })) return;
  const ns = `kpsptr${process.pid % 100000}`;
  const netnsDir = join('/etc/netns', ns);
  const dir = await mkdtemp(join(tmpdir(), 'kps-ptr-'));
  const hadNetnsDir = existsSync('/etc/netns');
  try {
    await runProgram(['ip', 'netns', 'add', ns]);
    await runProgram(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    await mkdir(netnsDir, { recursive: true });
    await writeFile(join(netnsDir, 'resolv.conf'), 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n');
    // A PTR record naming another address: written as no name at all.
    const literal = await historyLine(ns, dir, '192.0.2.1');
    t.diagnostic(`PTR 192.0.2.1: ${literal}`);
    assert.equal(FAILREGEX.exec(literal)?.[1], SCANNER, 'fail2ban bans the scanner');
    assert.ok(!literal.includes('192.0.2.1'), 'the address literal from the PTR record is not written');
    assert.match(literal, new RegExp(` Host: ${SCANNER.replaceAll('.', '\\.')}/${SCANNER.replaceAll('.', '\\.')} Port: 1 TCP Blocked$`));
    // A real name goes first, as PortSentry wrote it (resolvedHost/target): the address stays after the slash.
    const named = await historyLine(ns, dir, 'scanner.example');
    t.diagnostic(`PTR scanner.example: ${named}`);
    assert.equal(FAILREGEX.exec(named)?.[1], SCANNER, 'fail2ban bans the scanner');
    assert.match(named, new RegExp(` Host: scanner\\.example/${SCANNER.replaceAll('.', '\\.')} Port: 1 TCP Blocked$`));
  } finally {
    await rm(netnsDir, { recursive: true, force: true });
    if (!hadNetnsDir) await rmdir('/etc/netns').catch(() => undefined);
    await deleteNamespace(ns);
    await rm(dir, { recursive: true, force: true });
  }
});
