// What loading each part of the code costs a process (issue 17, item 3): a fresh child per
// set of modules, its RSS and V8 heap after a full garbage collection, against a child that
// loads nothing. "agent, before" is what the agent loaded until it talked to the API through
// api-connection.ts (its modules and client.ts, hence client-node's index); "agent" is what
// it loads now. Part of `npm run bench`.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { progress, type Figure } from './harness.js';

const CHILD = fileURLToPath(new URL('./module-child.js', import.meta.url));
const MIB = 2 ** 20;

interface Usage {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
}

function load(modules: string[]): Usage {
  const run = spawnSync(process.execPath, ['--expose-gc', CHILD, ...modules], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (run.error) throw new Error(`module child ${modules.join(' ')}: ${run.error.message}`);
  if (run.status !== 0) throw new Error(`module child ${modules.join(' ')} exited with ${run.status}: ${run.stderr.trim()}`);
  return JSON.parse(run.stdout) as Usage;
}

const AGENT = ['src/cli/log-options.js', 'src/metrics/metrics.js', 'src/metrics/server.js', 'src/respond/firewall/select.js', 'src/agent/agent.js'];

/** [id, label, modules]; the first two are the comparison the issue asks for. */
const SETS: [string, string, string[]][] = [
  ['agent.before', 'agent, before (its modules and client.ts: client-node\'s index)', [...AGENT, 'src/k8s/client.js']],
  ['agent', 'agent (its modules and api-connection.ts)', [...AGENT, 'src/k8s/api-connection.js']],
  ['operator', 'operator (its modules and the full client)', ['src/cli/log-options.js', 'src/metrics/operator-metrics.js', 'src/metrics/server.js', 'src/operator/operator.js', 'src/k8s/client.js']],
  ['client-node', "@kubernetes/client-node's index", ['@kubernetes/client-node']],
  ['client-node.config', '  its KubeConfig alone (config.js imports the generated index)', ['@kubernetes/client-node/dist/config.js']],
  ['client-node.cache', '  its ListWatch alone (cache.js: the serializer, all models)', ['@kubernetes/client-node/dist/cache.js']],
  ['client-node.watch', '  its Watch alone (watch.js: node-fetch)', ['@kubernetes/client-node/dist/watch.js']],
  ['client-node.lower', '  what the agent uses: config_types.js and exec_auth.js', ['@kubernetes/client-node/dist/config_types.js', '@kubernetes/client-node/dist/exec_auth.js']],
  ['api-connection', 'src/k8s/api-connection.ts', ['src/k8s/api-connection.js']],
  ['sentry', 'src/sentry/sentry.ts (detectors, engine, responders)', ['src/sentry/sentry.js']],
  ['prom-client', 'prom-client (metrics)', ['prom-client']],
  ['pino', 'pino (logs)', ['pino']],
  ['yaml', 'yaml (policy files; loaded by the commands that read them)', ['yaml']],
];

export function moduleCost(): Figure[] {
  progress('module load cost: a child process per set of modules');
  const bare = load([]);
  const figures: Figure[] = [{ id: 'load.bare', name: 'load: a node process that loads nothing', value: bare.rss / MIB, unit: 'MiB', extra: { ...bare } }];
  let before = NaN;
  for (const [id, label, modules] of SETS) {
    const u = load(modules);
    const added = (u.rss - bare.rss) / MIB;
    if (id === 'agent.before') before = added;
    figures.push({
      id: `load.${id}`,
      name: `load: ${label}, RSS added`,
      value: added,
      unit: 'MiB',
      ...(id === 'agent' ? { baseline: 'agent, before', baselineId: 'load.agent.before', ratio: added / before } : {}),
      extra: { rss: u.rss, heapUsedAdded: (u.heapUsed - bare.heapUsed) / MIB, heapTotalAdded: (u.heapTotal - bare.heapTotal) / MIB },
    });
  }
  return figures;
}
