#!/usr/bin/env node
// kube-portsentry command line: the standalone sentry and the policy tools.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { allCrds } from './k8s/crds.js';
import { LOG_LEVELS, createLogger, type LogLevel } from './log/logger.js';
import { Metrics } from './metrics/metrics.js';
import { startMetricsServer } from './metrics/server.js';
import { renderPolicyYaml } from './policy/yaml.js';
import { loadClassicFile } from './policy/classic-load.js';
import { PolicyError, defaultPolicy, loadPolicyFile } from './policy/load.js';
import type { PolicyDocument } from './policy/types.js';
import { Sentry } from './sentry/sentry.js';

const USAGE = `Usage:
  kube-portsentry run [--policy FILE.yaml | --config portsentry.conf [-tcp|-stcp|-atcp] [-udp|-sudp|-audp]]
                      [--log-level LEVEL] [--metrics-address HOST:PORT]
      Run the standalone sentry. With neither --policy nor --config, the bundled default
      policy (classic PortSentry defaults) is used.
  kube-portsentry convert portsentry.conf [-tcp|-stcp|-atcp] [-udp|-sudp|-audp]
      Print the YAML policy equivalent to a classic PortSentry configuration.
  kube-portsentry validate FILE.yaml
      Check a policy file and print every problem.
  kube-portsentry default-policy
      Print the bundled default policy.
  kube-portsentry crds [--out DIR]
      Print the CustomResourceDefinitions (kubectl apply -f -), or write one file each.
  kube-portsentry --version | --help
`;

class UsageError extends Error {}

const CLASSIC_FLAGS = ['-tcp', '-udp', '-stcp', '-sudp', '-atcp', '-audp'];

/** Splits the classic single-dash mode flags from the rest, which parseArgs reads. */
function splitClassicFlags(args: string[]): { classic: string[]; rest: string[] } {
  return {
    classic: args.filter((a) => CLASSIC_FLAGS.includes(a)),
    rest: args.filter((a) => !CLASSIC_FLAGS.includes(a)),
  };
}

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function loadPolicy(values: { policy?: string; config?: string }, classic: string[]): Promise<PolicyDocument> {
  if (values.policy && values.config) throw new UsageError('give --policy or --config, not both');
  if (classic.length && !values.config) throw new UsageError(`${classic.join(' ')}: classic mode flags go with --config`);
  if (values.config) {
    const { policy, warnings } = await loadClassicFile(values.config, classic);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    return policy;
  }
  if (values.policy) return loadPolicyFile(values.policy);
  return defaultPolicy();
}

async function run(args: string[]): Promise<number> {
  const { classic, rest } = splitClassicFlags(args);
  const { values } = parseArgs({
    args: rest,
    options: {
      policy: { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'metrics-address': { type: 'string' },
    },
    strict: true,
    allowPositionals: false,
  });
  const level = values['log-level'] as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const policy = await loadPolicy(values, classic);
  const logger = createLogger(level);
  const metrics = new Metrics();
  const sentry = new Sentry(policy, logger, metrics);

  let stopping: Promise<void> | undefined;
  const stop = (signal: string): Promise<void> =>
    (stopping ??= (async () => {
      logger.info({ signal }, 'stopping');
      await sentry.stop();
      server?.close();
    })());
  let server: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  const done = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => void stop(signal).then(() => resolve(0), () => resolve(1)));
  });
  try {
    await sentry.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot start');
    await sentry.stop().catch(() => undefined);
    return 1;
  }
  if (values['metrics-address']) {
    server = await startMetricsServer(values['metrics-address'], metrics.registry, {
      health: () => null,
      ready: () => (sentry.ready ? null : 'not ready'),
    });
    logger.info({ address: values['metrics-address'] }, 'serving /metrics, /healthz, /readyz');
  }
  return done;
}

async function convert(args: string[]): Promise<number> {
  const { classic, rest } = splitClassicFlags(args);
  const { positionals } = parseArgs({ args: rest, options: {}, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError('convert takes one classic configuration file');
  const { policy, warnings } = await loadClassicFile(positionals[0]!, classic);
  for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
  process.stdout.write(
    renderPolicyYaml(policy, [
      `Converted from ${positionals[0]} by kube-portsentry convert.`,
      'Classic PortSentry blocked forever; blocks here are lifted after response.duration.',
      'response.firewall is none, as PortSentry had no firewall set: "auto" adds the node firewall set.',
    ]),
  );
  return 0;
}

async function validateCommand(args: string[]): Promise<number> {
  const { positionals } = parseArgs({ args, options: {}, allowPositionals: true, strict: true });
  if (positionals.length !== 1) throw new UsageError('validate takes one policy file');
  await loadPolicyFile(positionals[0]!);
  process.stdout.write(`${positionals[0]}: valid\n`);
  return 0;
}

async function crdsCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { out: { type: 'string' } }, strict: true, allowPositionals: false });
  // YAML 1.1 output quotes strings such as `off` that kubectl and Helm (YAML 1.1 readers)
  // would otherwise take for booleans.
  const docs = allCrds().map((crd) => ({
    crd,
    text: `# Generated by kube-portsentry crds: do not edit.\n${stringify(crd, { lineWidth: 0, version: '1.1' })}`,
  }));
  if (!values.out) {
    process.stdout.write(docs.map((d) => d.text).join('---\n'));
    return 0;
  }
  await mkdir(values.out, { recursive: true });
  for (const { crd, text } of docs) {
    const name = (crd.metadata as { name: string }).name.split('.')[0];
    await writeFile(join(values.out, `${name}.yaml`), text);
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'run':
        return await run(args);
      case 'convert':
        return await convert(args);
      case 'validate':
        return await validateCommand(args);
      case 'default-policy':
        process.stdout.write(renderPolicyYaml(defaultPolicy(), ['The bundled default policy: classic PortSentry defaults.']));
        return 0;
      case 'crds':
        return await crdsCommand(args);
      case '--version':
        process.stdout.write(`${await version()}\n`);
        return 0;
      case '--help':
      case '-h':
      case 'help':
        process.stdout.write(USAGE);
        return 0;
      default:
        throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : 'no command given');
    }
  } catch (err) {
    if (err instanceof PolicyError || (err as Error).name === 'ClassicConfError') {
      process.stderr.write(`kube-portsentry: ${(err as Error).message}\n`);
      return 2;
    }
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`kube-portsentry: ${(err as Error).message}\n\n${USAGE}`);
      return 2;
    }
    process.stderr.write(`kube-portsentry: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
