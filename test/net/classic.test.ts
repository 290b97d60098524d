// A classic portsentry.conf run end to end: `run --config FILE -tcp`, BLOCK_TCP=1 runs
// KILL_ROUTE and KILL_RUN_CMD as argument vectors, and the history file gets classic lines.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { SentryProcess } from '../../support/sentry-process.js';

test('classic conf: BLOCK_TCP=1 runs KILL_ROUTE and KILL_RUN_CMD (no shell), history in classic format', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'nmap'] })) return;
  const dir = await mkdtemp(join(tmpdir(), 'kps-classic-'));
  const recorder = join(dir, 'record.cjs');
  await writeFile(recorder, "require('fs').appendFileSync(process.argv[2], JSON.stringify(process.argv.slice(3)) + '\\n');\n");
  await writeFile(join(dir, 'portsentry.ignore'), '# never block\n127.0.0.1/32\n0.0.0.0\n');
  const conf = join(dir, 'portsentry.conf');
  await writeFile(
    conf,
    [
      '# classic file, 1.2 style',
      'TCP_PORTS="1,11,15,79"',
      'UDP_PORTS="1,7,9"',
      `IGNORE_FILE="${dir}/portsentry.ignore"`,
      `HISTORY_FILE="${dir}/portsentry.history"`,
      `BLOCKED_FILE="${dir}/portsentry.blocked"`,
      'RESOLVE_HOST = "0"',
      'BLOCK_UDP="0"',
      'BLOCK_TCP="1"',
      'KILL_ROUTE="ip route add blackhole $TARGET$"',
      `KILL_RUN_CMD="${process.execPath} ${recorder} ${dir}/cmd.log $TARGET$ $PORT$ $MODE$ 'a;b && c'"`,
      'KILL_RUN_CMD_FIRST = "1"',
      'SCAN_TRIGGER="0"',
      '',
    ].join('\n'),
  );
  const net = await TestNet.create();
  let sentry: SentryProcess | undefined;
  try {
    sentry = await SentryProcess.start(net, { args: ['--config', conf, '-tcp'] });
    assert.ok(sentry.find((l) => l.msg === 'sentry ready' && l.tcp === 'bind' && l.udp === 'off'));
    await net.exec(net.scanner, ['nmap', '-sT', '-Pn', '-n', '-p', '79', TARGET_V4]);
    await sentry.waitFor((l) => l.msg === 'response in place');
    const routes = (await net.exec(net.target, ['ip', 'route', 'show', 'type', 'blackhole'])).stdout;
    assert.match(routes, new RegExp(`blackhole ${SCANNER_V4.replaceAll('.', '\\.')}`));
    assert.deepEqual(JSON.parse((await readFile(join(dir, 'cmd.log'), 'utf8')).trim()), [SCANNER_V4, '79', 'tcp', 'a;b && c']);
    const history = await readFile(join(dir, 'portsentry.history'), 'utf8');
    assert.match(history, new RegExp(`^\\d+ - \\d\\d/\\d\\d/\\d{4} \\d\\d:\\d\\d:\\d\\d Host: ${SCANNER_V4}/${SCANNER_V4} Port: 79 TCP Blocked\\n$`));
    assert.equal(await readFile(join(dir, 'portsentry.blocked.tcp'), 'utf8'), history);
    assert.equal(await sentry.stop(), 0);
  } finally {
    await sentry?.stop();
    await net.destroy();
  }
});
