// The import direction between the folders of src/ (docs/architecture.md): a folder imports
// only the folders listed for it; the pure folders import nothing that reaches outside the
// process; bench/ and support/ never import test/, support/ never imports bench/. Run by
// `npm test` (pretest): `node dist/tools/check-imports.js [ROOT]` exits 1 naming each breach.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** What each folder of src/ may import besides itself ('' is src/cli.ts, the entry point). */
export const ALLOWED: Readonly<Record<string, readonly string[]>> = {
  native: [],
  log: [],
  metrics: [],
  net: ['native'],
  policy: ['net'],
  engine: ['net', 'policy'],
  cluster: ['engine', 'net', 'policy'],
  blocks: ['cluster', 'engine', 'net', 'policy'],
  detect: ['engine', 'native', 'net', 'policy'],
  respond: ['engine', 'log', 'metrics', 'native', 'net', 'policy'],
  k8s: ['cluster', 'log', 'net', 'policy'],
  sentry: ['blocks', 'cluster', 'detect', 'engine', 'log', 'metrics', 'native', 'net', 'policy', 'respond'],
  agent: ['cluster', 'engine', 'k8s', 'log', 'metrics', 'net', 'policy', 'respond', 'sentry'],
  operator: ['cluster', 'engine', 'k8s', 'log', 'metrics', 'net', 'policy'],
  cli: ['blocks', 'cluster', 'engine', 'k8s', 'log', 'metrics', 'net', 'policy', 'respond', 'sentry'],
  '': ['agent', 'blocks', 'cli', 'cluster', 'detect', 'engine', 'k8s', 'log', 'metrics', 'net', 'operator', 'policy', 'respond', 'sentry'],
};

/** Folders of pure rules: no file, network, process or Kubernetes access. */
export const PURE: readonly string[] = ['engine', 'cluster', 'blocks', 'policy'];
/** The files of a pure folder that read its input at the edge (policy files). */
export const PURE_EXCEPTIONS: readonly string[] = ['policy/load.ts', 'policy/classic-load.ts'];
const IO_MODULE = /^(node:)?(fs|fs\/promises|net|dgram|http|https|http2|tls|child_process|dns|dns\/promises|os|worker_threads|cluster)$|^@kubernetes\//;

export interface Breach {
  file: string;
  line: number;
  target: string;
  why: string;
}

/** `from '…'` (imports and re-exports, over several lines too), `import '…'`, `import('…')`. */
const IMPORT = /\bfrom\s*'([^']+)'|^\s*import\s*'([^']+)'|\bimport\(\s*'([^']+)'\s*\)/gm;

function* sourceFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* sourceFiles(path);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) yield path;
  }
}

/** The top folder of the repository a path lies in, and for src/ its folder there. */
function placeOf(root: string, path: string): { top: string; folder: string } {
  const parts = relative(root, path).split(sep);
  const top = parts[0] ?? '';
  return { top, folder: top === 'src' && parts.length > 2 ? parts[1]! : '' };
}

export function checkImports(root: string): Breach[] {
  const breaches: Breach[] = [];
  for (const top of ['src', 'bench', 'support', 'test']) {
    let files: string[];
    try {
      files = [...sourceFiles(join(root, top))];
    } catch {
      continue;
    }
    for (const file of files) {
      const from = placeOf(root, file);
      const rel = relative(root, file).split(sep).join('/');
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(IMPORT)) {
        const spec = (m[1] ?? m[2] ?? m[3])!;
        const line = text.slice(0, m.index).split('\n').length;
        const breach = (target: string, why: string) => breaches.push({ file: rel, line, target, why });
        if (!spec.startsWith('.')) {
          const pure = from.top === 'src' && PURE.includes(from.folder) && !PURE_EXCEPTIONS.includes(rel.slice('src/'.length));
          if (pure && IO_MODULE.test(spec)) breach(spec, `src/${from.folder}/ holds pure rules: no I/O modules`);
          continue;
        }
        const to = placeOf(root, normalize(join(dirname(file), spec)));
        if (from.top === 'src') {
          const allowed = ALLOWED[from.folder];
          if (to.top !== 'src') breach(spec, 'src/ imports only src/');
          else if (to.folder === from.folder) continue;
          else if (!allowed) breach(spec, `src/${from.folder}/ has no import rule`);
          else if (!allowed.includes(to.folder)) breach(spec, `src/${from.folder || 'cli.ts'} may not import src/${to.folder || 'cli.ts'}`);
        } else if ((from.top === 'bench' || from.top === 'support') && to.top === 'test') breach(spec, `${from.top}/ may not import test/ (shared helpers live in support/)`);
        else if (from.top === 'support' && to.top === 'bench') breach(spec, 'support/ may not import bench/');
      }
    }
  }
  return breaches;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === normalize(process.argv[1])) {
  // dist/tools/check-imports.js: the sources are two levels up.
  const root = process.argv[2] ?? fileURLToPath(new URL('../../', import.meta.url));
  const breaches = checkImports(root);
  for (const b of breaches) console.error(`${b.file}:${b.line}: imports ${b.target}: ${b.why}`);
  if (breaches.length) {
    console.error(`import direction: ${breaches.length} breach(es); see tools/check-imports.ts and docs/architecture.md`);
    process.exit(1);
  }
  console.log('import direction: ok');
}
