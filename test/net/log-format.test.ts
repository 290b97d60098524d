// The log formats of `run`: PortSentry's classic syslog lines (--log-format classic), for
// logcheck and syslog rules, and text for a person when stdout is a terminal.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { CLI } from '../../support/sentry-process.js';

/** Collects a process's stdout lines and waits for one. */
function lines(child: ChildProcess): { all: string[]; waitFor(pred: (l: string) => boolean, ms?: number): Promise<string> } {
  const all: string[] = [];
  let buffer = '';
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk;
    for (let nl; (nl = buffer.indexOf('\n')) >= 0; ) {
      const line = buffer.slice(0, nl).replace(/\r$/, '');
      buffer = buffer.slice(nl + 1);
      all.push(line);
      for (const w of waiters.splice(0)) {
        if (w.pred(line)) w.resolve(line);
        else waiters.push(w);
      }
    }
  });
  return {
    all,
    waitFor: (pred, ms = 15_000) =>
      new Promise((resolve, reject) => {
        const seen = all.find(pred);
        if (seen !== undefined) return resolve(seen);
        const timer = setTimeout(() => reject(new Error(`no such line within ${ms} ms; got:\n${all.join('\n')}`)), ms);
        waiters.push({ pred, resolve: (l) => (clearTimeout(timer), resolve(l)) });
      }),
  };
}

async function policyFile(spec: string): Promise<{ dir: string; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-logfmt-'));
  const file = join(dir, 'policy.yaml');
  await writeFile(file, `apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nmetadata: {name: logs}\nspec:\n${spec}  files: {history: "", blocked: ""}\n`);
  return { dir, file };
}

test('--log-format classic: PortSentry\'s own syslog lines, nothing else', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'hping3'] })) return;
  const { dir, file } = await policyFile(`  tcp: {mode: stealth, ports: [594, 595]}
  udp: {mode: "off"}
  response:
    tcp: block
    firewall: none
    hostsDeny: {enabled: true, path: HD}
`.replace('HD', join(await mkdtemp(join(tmpdir(), 'kps-hd-')), 'hosts.deny')));
  const net = await TestNet.create();
  const child = net.spawn(net.target, [process.execPath, CLI, 'run', '--policy', file, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'c.sock'), '--log-format', 'classic']);
  const out = lines(child);
  const syn = (port: number) => net.exec(net.scanner, ['hping3', '-c', '1', '-S', '-p', String(port), TARGET_V4]).catch(() => undefined);
  try {
    await out.waitFor((l) => l === 'adminalert: PortSentry is now active and listening.');
    assert.ok(out.all.includes('adminalert: Going into stealth listen mode on TCP port: 594'));
    await syn(594);
    const host = `${SCANNER_V4}/${SCANNER_V4}`;
    await out.waitFor((l) => l === `attackalert: TCP SYN/Normal scan from host: ${host} to TCP port: 594`);
    await out.waitFor((l) => l === `attackalert: Host ${SCANNER_V4} has been blocked via wrappers with string: "ALL: ${SCANNER_V4} : DENY"`);
    // No firewall set in this policy: the next probe reaches the sentry, which says so once.
    await syn(595);
    await out.waitFor((l) => l === `attackalert: Host: ${host} is already blocked Ignoring`);
    await syn(594);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(out.all.filter((l) => l.includes('is already blocked')).length, 1, 'once per block, not once per packet');
    for (const l of out.all) assert.match(l, /^(attackalert|adminalert): /, 'plain classic lines only');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
    await net.destroy();
  }
  assert.ok(out.all.some((l) => l.startsWith('adminalert: stopping')));
});

test('logs are text at a terminal, JSON otherwise', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['ip', 'script'] })) return;
  const { dir, file } = await policyFile(`  tcp: {mode: bind, ports: [79]}
  udp: {mode: "off"}
  response: {firewall: none}
`);
  const net = await TestNet.create();
  // script(1) gives the sentry a pseudo-terminal for its stdout.
  const command = [process.execPath, CLI, 'run', '--policy', file, '--state-dir', join(dir, 'state'), '--socket', join(dir, 'c.sock')].join(' ');
  const child = net.spawn(net.target, ['script', '-qefc', command, '/dev/null']);
  const out = lines(child);
  try {
    const ready = await out.waitFor((l) => l.includes('sentry ready'));
    assert.match(ready, /^\d\d:\d\d:\d\d\.\d{3} INFO {2}sentry ready policy=logs tcp=bind udp=off firewall=none$/);
    assert.ok(!out.all.some((l) => l.trim().startsWith('{')), 'no JSON at a terminal');
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('close', r));
  }
  // The same command with stdout on a pipe (a journal, a collector): JSON.
  const piped = net.spawn(net.target, command.split(' '));
  const json = lines(piped);
  try {
    const ready = JSON.parse(await json.waitFor((l) => l.includes('sentry ready'))) as Record<string, unknown>;
    assert.deepEqual([ready.level, ready.msg, ready.tcp], ['info', 'sentry ready', 'bind']);
  } finally {
    piped.kill('SIGTERM');
    await new Promise((r) => piped.once('close', r));
    await net.destroy();
  }
});
