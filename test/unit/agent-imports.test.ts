// What the agent loads: the static imports of its modules, followed through the build and
// into @kubernetes/client-node. client-node's index (and its KubeConfig, cache and typed
// clients, which import it or all its generated models) costs about 65 MB of RSS; the agent
// uses its small lower modules only (docs/architecture.md, "A lean agent").
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

const DIST_SRC = fileURLToPath(new URL('../../src/', import.meta.url));
const CLIENT_NODE = dirname(createRequire(import.meta.url).resolve('@kubernetes/client-node/package.json'));
/** Static imports and re-exports; dynamic import() is left out (loaded when used). */
const STATIC = /^\s*(?:import|export)\s[^;]*?\bfrom\s*['"]([^'"]+)['"]|^\s*import\s*['"]([^'"]+)['"]/gm;

/** Every file the modules load at start, and the packages (outside client-node) they name. */
function closure(entries: string[]): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [...entries];
  while (queue.length) {
    const file = queue.pop()!;
    if (files.has(file)) continue;
    files.add(file);
    for (const m of readFileSync(file, 'utf8').matchAll(STATIC)) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else if (spec === '@kubernetes/client-node') queue.push(join(CLIENT_NODE, 'dist', 'index.js'));
      else if (spec.startsWith('@kubernetes/client-node/')) queue.push(join(CLIENT_NODE, spec.slice('@kubernetes/client-node/'.length)));
      else if (!spec.startsWith('node:')) packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
    }
  }
  return { files, packages };
}

describe("the agent's module load", () => {
  const entries = ['agent/agent.js', 'k8s/api-connection.js'].map((f) => join(DIST_SRC, f));

  test('reaches none of client-node but its kubeconfig parsing and exec auth', () => {
    assert.ok(entries.every((e) => existsSync(e)), 'built (npm run build)');
    const { files } = closure(entries);
    const fromClient = [...files].filter((f) => f.startsWith(CLIENT_NODE)).map((f) => f.slice(CLIENT_NODE.length + 1)).sort();
    assert.deepEqual(fromClient, ['dist/config_types.js', 'dist/exec_auth.js']);
  });

  test("loads none of client-node's own dependencies at start", () => {
    const { packages } = closure(entries);
    for (const heavy of ['node-fetch', 'openid-client', 'js-yaml', 'ws', 'yaml', 'form-data', 'hpagent', 'socks-proxy-agent'])
      assert.ok(!packages.has(heavy), `${heavy} is loaded at start: ${[...packages].sort().join(', ')}`);
  });

  test('the operator, for contrast, loads the full client', () => {
    const { files } = closure([join(DIST_SRC, 'operator/operator.js')]);
    assert.ok(files.has(join(CLIENT_NODE, 'dist', 'index.js')));
  });
});
