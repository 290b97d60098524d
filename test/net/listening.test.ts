// The ports-in-use table against the real kernel: TCP listeners from sock_diag are the
// ones /proc/net/tcp and tcp6 list, in a test namespace with services of its own.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, before, test } from 'node:test';
import { TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';

const LISTENING = new URL('../../src/detect/listening.js', import.meta.url).href;

let net: TestNet | undefined;
const services: ChildProcess[] = [];
before(async () => {
  if (process.getuid?.() !== 0) return;
  net = await TestNet.create();
  for (const port of [22, 8080, 40000]) services.push(await net.service(port));
});
after(async () => {
  for (const s of services) s.kill();
  await net?.destroy();
});

test('TCP ports in use by sock_diag equal those of /proc/net/tcp{,6}', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip'] })) return;
  const { stdout } = await net!.exec(net!.target, [
    process.execPath,
    '--input-type=module',
    '-e',
    `
    import { readFileSync } from 'node:fs';
    import { NetlinkSocket } from ${JSON.stringify(new URL('../../src/net/netlink.js', import.meta.url).href)};
    import { markPortsInUse, markTcpListeners } from ${JSON.stringify(LISTENING)};
    const diag = new Uint8Array(65536);
    markTcpListeners(new NetlinkSocket(4), diag);
    const proc = new Uint8Array(65536);
    for (const f of ['tcp', 'tcp6']) markPortsInUse(readFileSync('/proc/net/' + f, 'utf8'), 'tcp', proc);
    const list = (a) => [...a.keys()].filter((p) => a[p]);
    console.log(JSON.stringify({ diag: list(diag), proc: list(proc) }));`,
  ]);
  const r = JSON.parse(stdout) as { diag: number[]; proc: number[] };
  assert.deepEqual(r.diag, [22, 8080, 40000]);
  assert.deepEqual(r.diag, r.proc);
});
