// Helm for the chart tests, built from its Go module by test/helm/build.sh (cached per
// machine), and helpers to render the chart into parsed manifests.
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { runProgram } from '../src/respond/run-program.js';
import { hasTool } from './prereq.js';

export const REPO = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = join(REPO, 'charts', 'kube-portsentry');
const BUILD = join(REPO, 'test', 'helm', 'build.sh');

let helmPath: Promise<string> | undefined;

/** Builds (first time on a machine) or finds helm. */
export function helmBinary(): Promise<string> {
  helmPath ??= runProgram(['bash', BUILD], { timeoutMs: 30 * 60_000 }).then((r) => r.stdout.trim().split('\n').at(-1)!);
  return helmPath;
}

/** True when helm can be had (Go builds it); otherwise skips, or throws under CI. */
export function helmReady(t: TestContext): boolean {
  if (hasTool('go')) return true;
  if (process.env.CI === 'true') throw new Error('prerequisite missing under CI: go (to build helm)');
  process.stdout.write(`# skipping "${t.name}": needs go to build helm\n`);
  t.skip('needs go to build helm');
  return false;
}

export async function helm(args: string[], options: { kubeconfig?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  const bin = await helmBinary();
  const kube = options.kubeconfig ? ['--kubeconfig', options.kubeconfig] : [];
  return runProgram([bin, ...kube, ...args], { timeoutMs: 120_000 });
}

/** Runs helm expecting it to fail; resolves with everything it printed ('' if it succeeded). */
export async function helmFailure(args: string[]): Promise<string> {
  const bin = await helmBinary();
  return new Promise((resolve) => {
    execFile(bin, args, { timeout: 120_000, encoding: 'utf8' }, (err, stdout, stderr) => resolve(err ? `${stdout}\n${stderr}` : ''));
  });
}

export type Manifest = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
};

/** Writes values to a temp file and runs fn with its path. */
export async function withValuesFile<T>(values: unknown, fn: (file: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'kps-values-'));
  try {
    const file = join(dir, 'values.yaml');
    // YAML 1.1 output, as Helm reads it: strings such as "off" stay quoted, not booleans.
    await writeFile(file, typeof values === 'string' ? values : stringify(values, { version: '1.1' }));
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `helm template` with the given values; the rendered text and its parsed documents. */
export async function renderChart(
  values: unknown = {},
  options: { release?: string; namespace?: string } = {},
): Promise<{ text: string; docs: Manifest[] }> {
  const text = await withValuesFile(values, async (file) =>
    (await helm(['template', options.release ?? 'kps', CHART, '--namespace', options.namespace ?? 'portsentry', '-f', file])).stdout,
  );
  const docs = parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(`rendered YAML does not parse: ${d.errors[0]!.message}`);
      return d.toJS() as Manifest | null;
    })
    .filter((d): d is Manifest => d !== null);
  return { text, docs };
}

export function find(docs: Manifest[], kind: string, name?: string): Manifest {
  const found = docs.find((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  if (!found) throw new Error(`no ${kind}${name ? ` ${name}` : ''} in the rendered chart`);
  return found;
}

/** Values that turn every optional part of the chart on. */
export const ALL_ON = {
  crds: { enabled: true, keep: true },
  defaultPolicy: { enabled: true },
  outputs: {
    networkPolicy: { enabled: true, namespaces: ['default', 'web'] },
    calico: { enabled: true },
    cilium: { enabled: true },
  },
  serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
  prometheusRule: { enabled: true, labels: { release: 'prometheus' }, alertLabels: { team: 'security' } },
  grafanaDashboard: { enabled: true, annotations: { grafana_folder: 'Security' } },
  imagePullSecrets: [{ name: 'regcred' }],
  commonLabels: { 'example.com/owner': 'security' },
  operator: { priorityClassName: 'system-cluster-critical' },
};
