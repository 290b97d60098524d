// The command line as a user meets it: real processes, real files, exit codes and messages.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { debianPortsentry } from '../../support/debian-portsentry.js';
import { CLI } from '../../support/sentry-process.js';

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code: typeof code === 'number' ? code : 1, stdout, stderr });
    });
  });
}

async function tempFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-cli-'));
  const file = join(dir, name);
  await writeFile(file, text);
  return file;
}

test('convert turns Debian\'s real portsentry.conf into a policy that validates', async (t) => {
  const deb = await debianPortsentry();
  if ('skip' in deb) return t.skip(deb.skip);
  const conf = join(deb.root, 'etc/portsentry/portsentry.conf');
  const converted = await cli(['convert', conf, '-atcp', '-sudp']);
  assert.equal(converted.code, 0, converted.stderr);
  assert.match(converted.stdout, /^# Converted from .*portsentry.conf/);
  assert.match(converted.stdout, /mode: advanced/);
  assert.match(converted.stdout, /mode: stealth/);
  assert.match(converted.stdout, /command: \[ *\/sbin\/route, add, -host, \$TARGET\$, reject *\]/);
  assert.match(converted.stderr, /warning: IGNORE_FILE/);
  const file = await tempFile('converted.yaml', converted.stdout);
  const validated = await cli(['validate', file]);
  assert.equal(validated.code, 0, validated.stderr);
  assert.match(validated.stdout, /valid/);
});

test('validate lists every problem with file, line, column and field path', async () => {
  const file = await tempFile(
    'bad.yaml',
    'apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nspec:\n  tcp:\n    ports: [1, "9-3"]\n  trigger:\n    count: -2\n  ignore: ["10.1.1.0/40"]\n',
  );
  const r = await cli(['validate', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file}:5:\\d+: spec.tcp.ports\\[1\\]: range "9-3" is reversed`));
  assert.match(r.stderr, new RegExp(`${file}:7:\\d+: spec.trigger.count: must be at least 0`));
  assert.match(r.stderr, new RegExp(`${file}:8:\\d+: spec.ignore\\[0\\]: "10.1.1.0/40" is not an IP address or CIDR`));
});

test('run refuses a bad policy before anything starts', async () => {
  const file = await tempFile('bad.yaml', 'apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nspec:\n  tcp: {ports: [0]}\n');
  const r = await cli(['run', '--policy', file]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /spec.tcp.ports\[0\]: port 0 is not between 1 and 65535/);
  assert.equal(r.stdout, '', 'nothing started, nothing logged');
});

test('run refuses a classic file with an unknown key, naming file, line and key', async () => {
  const file = await tempFile('portsentry.conf', '# comment\nTCP_PORTS="1,11"\nBLOCK_TCP="7"\nFROB="1"\n');
  const r = await cli(['run', '--config', file, '-tcp']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, new RegExp(`${file}:3: BLOCK_TCP: must be 0, 1 or 2`));
  assert.match(r.stderr, new RegExp(`${file}:4: FROB: unknown key`));
});

test('usage errors say what is wrong', async () => {
  assert.match((await cli(['frobnicate'])).stderr, /unknown command "frobnicate"/);
  const noConfig = await cli(['run', '-stcp']);
  assert.equal(noConfig.code, 2);
  assert.match(noConfig.stderr, /classic mode flags go with --config/);
  const both = await cli(['run', '-tcp', '-stcp', '--config', '/dev/null']);
  assert.equal(both.code, 2);
  assert.match((await cli(['run', '--log-level', 'loud'])).stderr, /--log-level must be one of/);
  assert.match((await cli(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
  assert.match((await cli(['--help'])).stdout, /kube-portsentry run/);
});

test('default-policy prints the bundled default, which validates', async () => {
  const r = await cli(['default-policy']);
  assert.equal(r.code, 0);
  const file = await tempFile('default.yaml', r.stdout);
  assert.equal((await cli(['validate', file])).code, 0);
});

test('every command answers --help with its own usage and exits 0', async () => {
  const commands = ['run', 'blocks', 'block', 'unblock', 'status', 'flush', 'cleanup', 'agent', 'operator', 'convert', 'validate', 'default-policy', 'crds'];
  for (const command of commands) {
    for (const flag of ['--help', '-h']) {
      const r = await cli([command, flag]);
      assert.equal(r.code, 0, `${command} ${flag}: ${r.stderr}`);
      assert.match(r.stdout, new RegExp(`^Usage:\\n  kube-portsentry ${command}\\b`), `${command} ${flag}`);
      assert.equal(r.stderr, '');
    }
  }
  const top = await cli(['--help']);
  for (const command of commands) assert.match(top.stdout, new RegExp(`kube-portsentry ${command}\\b`));
  assert.match(top.stdout, /COMMAND --help/);
});

test('bad arguments name the problem and show that command\'s usage; bad log options are refused', async () => {
  const r = await cli(['agent', '--frob']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Unknown option '--frob'/);
  assert.match(r.stderr, /Usage:\n {2}kube-portsentry agent /);
  assert.doesNotMatch(r.stderr, /kube-portsentry operator/);
  assert.match((await cli(['run', '--log-format', 'xml'])).stderr, /--log-format must be one of json, text, classic/);
  assert.match((await cli(['agent', '--node-name', 'n', '--namespace', 'ns', '--operator-url', 'https://o', '--instance', 'Bad_Name'])).stderr, /--instance "Bad_Name" must be a Helm release name/);
  const cleanup = await cli(['cleanup', '--instance', 'a b']);
  assert.equal(cleanup.code, 2);
  assert.match(cleanup.stderr, /must be a Helm release name/);
});

test('--defaults: Debian\'s /etc/default/portsentry picks the classic modes, as its init script did', async () => {
  const conf = await tempFile('portsentry.conf', 'TCP_PORTS="1,11"\nUDP_PORTS="7"\n');
  const defaults = await tempFile('portsentry', '# /etc/default/portsentry\nTCP_MODE="atcp"\nUDP_MODE="sudp"\nOTHER="x"\n');
  const r = await cli(['convert', conf, '--defaults', defaults]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /tcp:\n {4}mode: advanced/);
  assert.match(r.stdout, /udp:\n {4}mode: stealth/);
  assert.match(r.stderr, new RegExp(`warning: ${defaults}:4: OTHER: not read \\(only TCP_MODE and UDP_MODE are\\)`));
  const both = await cli(['convert', conf, '-tcp', '--defaults', defaults]);
  assert.equal(both.code, 2);
  assert.match(both.stderr, /give the classic mode flags \(-tcp\) or --defaults, not both/);
  const none = await tempFile('portsentry', 'TCP_MODE=""\nUDP_MODE=""\n');
  const empty = await cli(['convert', conf, '--defaults', none]);
  assert.equal(empty.code, 2);
  assert.match(empty.stderr, /neither TCP_MODE nor UDP_MODE is set: nothing would run/);
});
