// The native addons built with AddressSanitizer (binding.gyp's asan flag: node-gyp rebuild
// --asan=1), and the tests that drive them run against that build: a use after free, an
// overflow or a double free aborts with a report instead of passing unnoticed. Node is not
// instrumented, so the sanitizer's runtime is preloaded; leak checking is off, since Node
// itself does not free everything at exit, and so is the new/delete size check, which
// Node's own C++ trips (not ours: the addons are C).
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { test } from 'node:test';
import { prerequisites } from '../../support/prereq.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The tests that load the addons (dist paths). */
const NATIVE_TESTS = ['test/native/addons.test.js', 'test/unit/packet.test.js', 'test/fuzz/packet.test.js', 'test/net/rawreader.test.js', 'test/net/firewall.test.js'];

function asanRuntime(): string | undefined {
  try {
    const path = execFileSync('gcc', ['-print-file-name=libasan.so'], { encoding: 'utf8' }).trim();
    return path.startsWith('/') && existsSync(path) ? path : undefined;
  } catch {
    return undefined;
  }
}

test('the native tests pass under AddressSanitizer', { timeout: 600_000 }, async (t) => {
  if (!prerequisites(t, { root: true, tools: ['gcc', 'make'] })) return;
  const runtime = asanRuntime();
  if (!runtime) {
    if (process.env.CI === 'true') throw new Error('prerequisite missing under CI: libasan (gcc)');
    return t.skip('needs libasan');
  }
  const dir = mkdtempSync(join(tmpdir(), 'kps-asan-'));
  try {
    cpSync(join(ROOT, 'binding.gyp'), join(dir, 'binding.gyp'));
    cpSync(join(ROOT, 'src/native'), join(dir, 'src/native'), { recursive: true });
    const nodedir = process.env.npm_config_nodedir || dirname(dirname(process.execPath));
    await promisify(execFile)(join(ROOT, 'node_modules/.bin/node-gyp'), ['rebuild', '--asan=1', `--nodedir=${nodedir}`], { cwd: dir, timeout: 300_000 });
    const addons = join(dir, 'build/Release');
    // A fresh test run, not a subtest of this one (node:test marks its children so).
    const { NODE_TEST_CONTEXT: _, ...env } = process.env;
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...NATIVE_TESTS.map((f) => join(ROOT, 'dist', f))], {
      cwd: ROOT,
      env: {
        ...env,
        LD_PRELOAD: runtime,
        ASAN_OPTIONS: 'detect_leaks=0:new_delete_type_mismatch=0:halt_on_error=1',
        KUBE_PORTSENTRY_ADDON_DIR: addons,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    const summary = output.split('\n').filter((l) => /^# (tests|pass|fail|skipped)/.test(l));
    t.diagnostic(`under ASan: ${summary.join(', ')}`);
    const report = /ERROR: AddressSanitizer[\s\S]{0,3000}/.exec(output)?.[0];
    assert.equal(report, undefined, `AddressSanitizer report:\n${report}`);
    assert.equal(code, 0, `native tests under ASan failed:\n${output.slice(-4000)}`);
    assert.match(output, /^# pass [1-9]/m, 'no test ran under ASan');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
