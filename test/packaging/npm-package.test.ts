// The npm package, as a standalone user gets it: from a clean copy of the repository (the
// files git would commit, no node_modules, dist or build), `npm ci` and `npm start` work with
// no Node headers to download (the README's first command on a host that reaches only the
// package registries); `npm pack` gives a package that `npm install -g` installs, building the
// native addons against the local headers; and the installed command detects and blocks a
// scan in a test namespace.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SCANNER_V4, TARGET_V4, TestNet } from '../../support/netns.js';
import { prerequisites } from '../../support/prereq.js';
import { SentryProcess, adminIn } from '../../support/sentry-process.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

function run(argv: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<{ code: number; out: string }> {
  return new Promise((resolve) =>
    execFile(argv[0]!, argv.slice(1), { cwd: options.cwd, env: options.env, timeout: options.timeoutMs ?? 600_000, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

test('npm ci, npm pack and npm install -g with no header download; the installed command blocks a scan', async (t) => {
  if (!prerequisites(t, { root: true, tools: ['git', 'npm', 'ip', 'nft', 'make', 'g++'] })) return;
  const work = await mkdtemp(join(tmpdir(), 'kps-npm-'));
  try {
    // A clean copy: what git has or would add, as a fresh clone would give it.
    const listed = await run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: REPO });
    const src = join(work, 'src');
    for (const file of listed.out.split('\0').filter(Boolean)) {
      if (!existsSync(join(REPO, file))) continue; // deleted, not yet committed
      await mkdir(dirname(join(src, file)), { recursive: true });
      await copyFile(join(REPO, file), join(src, file));
    }
    // npm as on a fresh machine: no user configuration (so no nodedir), and a header download
    // that cannot succeed: any attempt fails the install. The package cache is shared, for speed.
    const home = join(work, 'home');
    await mkdir(home);
    await writeFile(join(home, '.npmrc'), '');
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: home, npm_config_cache: join(homedir(), '.npm'), npm_config_disturl: 'http://127.0.0.1:9', npm_config_update_notifier: 'false' };
    const npm = (args: string[], cwd: string) => run(['npm', ...args, '--no-audit', '--no-fund', '--prefer-offline'], { cwd, env });
    const noDownload = async (what: string, out: string) => {
      assert.doesNotMatch(out, /gyp http GET|headers\.tar\.gz/, `${what} fetched Node headers`);
      assert.equal(existsSync(join(home, '.cache', 'node-gyp')), false, `${what} left downloaded headers`);
    };

    const ci = await npm(['ci'], src);
    assert.equal(ci.code, 0, ci.out);
    await noDownload('npm ci', ci.out);
    assert.deepEqual((await readdir(join(src, 'build', 'Release'))).filter((f) => f.endsWith('.node')).sort(), ['netlink.node', 'rawbatch.node', 'tripwire.node']);
    const start = await run(['npm', 'start', '--', '--help'], { cwd: src, env });
    assert.equal(start.code, 0, start.out);
    assert.match(start.out, /kube-portsentry run /);

    const pack = await npm(['pack', '--pack-destination', work], src);
    assert.equal(pack.code, 0, pack.out);
    const tarball = join(work, (await readdir(work)).find((f) => f.endsWith('.tgz'))!);
    const files = (await run(['tar', 'tzf', tarball])).out.split('\n').filter(Boolean);
    for (const f of ['dist/src/cli.js', 'dist/src/sentry/sentry.js', 'src/native/build.sh', 'src/native/rawbatch.c', 'binding.gyp', 'policies/default.yaml', 'packaging/systemd/kube-portsentry.service', 'packaging/systemd/kube-portsentry.default'])
      assert.ok(files.includes(`package/${f}`), `${f} in the package`);
    assert.deepEqual(files.filter((f) => /^package\/(test|bench|node_modules|build|dist\/test|dist\/bench)\//.test(f) || f.endsWith('.map')), [], 'nothing but what runs');

    const prefix = join(work, 'prefix');
    const install = await npm(['install', '-g', '--prefix', prefix, '--foreground-scripts', '--allow-scripts=kube-portsentry', tarball], work);
    assert.equal(install.code, 0, install.out);
    await noDownload('npm install -g', install.out);
    assert.match(install.out, /gyp info ok/, 'the addons were built at install');
    const bin = join(prefix, 'bin', 'kube-portsentry');
    assert.ok((await stat(bin)).mode & 0o111);
    assert.equal((await run([bin, '--version'])).out, '0.1.0\n');
    const installed = join(prefix, 'lib', 'node_modules', 'kube-portsentry');
    const validated = await run([bin, 'validate', join(installed, 'policies', 'default.yaml')]);
    assert.equal(validated.code, 0, validated.out);

    // A short detection by the installed command, in a test namespace.
    const net = await TestNet.create();
    let sentry: SentryProcess | undefined;
    try {
      sentry = await SentryProcess.start(
        net,
        `apiVersion: kube-portsentry.io/v1alpha1
kind: PortSentryPolicy
metadata: {name: installed}
spec:
  tcp: {mode: bind, ports: [79]}
  udp: {mode: "off"}
  response: {tcp: block, firewall: nftables}
  files: {history: ${work}/state/history, blocked: ""}
`,
        [],
        { command: [bin] },
      );
      assert.equal(await net.connect(TARGET_V4, 79), 'open');
      await sentry.waitFor((l) => l.msg === 'response in place' && l.source === SCANNER_V4);
      assert.equal(await net.connect(TARGET_V4, 79), 'timeout', 'blocked');
      const listed = await adminIn(net, net.target, ['blocks', '--json', '--socket', sentry.socket, '--state-dir', sentry.stateDir]);
      assert.deepEqual((JSON.parse(listed.stdout) as { blocks: { address: string }[] }).blocks.map((b) => b.address), [SCANNER_V4]);
    } finally {
      await sentry?.stop();
      await net.destroy();
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});
