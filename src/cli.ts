#!/usr/bin/env node
// kube-portsentry command line: the standalone sentry and its admin commands, the cluster's
// agent and operator, and the policy tools.
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { createLogger } from './log/logger.js';
import { Metrics } from './metrics/metrics.js';
import { startMetricsServer } from './metrics/server.js';
import { parseCidr } from './net/ip.js';
import { parseDuration } from './policy/duration.js';
import { LOG_OPTIONS, logOptions } from './cli/log-options.js';
import { USAGE, UsageError, usageOf, wantsHelp } from './cli/usage.js';
import { ControlSocketError } from './sentry/control-socket.js';
import { RecordError } from './blocks/entry.js';
import { DEFAULT_INSTANCE, OwnershipError, firewallNames, instanceProblem } from './respond/firewall/owner.js';
import { selectFirewall } from './respond/firewall/select.js';
import type { HealthSource } from './metrics/server.js';
import type { Registry } from 'prom-client';

async function version(): Promise<string> {
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const list = (text: string | undefined): string[] => (text ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/** --allowed-commands, --allowed-hosts-deny: absolute paths, as policies name them. */
function pathList(flag: string, text: string | undefined): string[] {
  const paths = list(text);
  for (const p of paths) if (!p.startsWith('/')) throw new UsageError(`--${flag}: ${JSON.stringify(p)} is not an absolute path`);
  return paths;
}

/** --service-cidr, --pod-cidr: CIDRs, each checked. */
function cidrList(flag: string, text: string | undefined): string[] {
  const cidrs = list(text);
  for (const c of cidrs) if (!parseCidr(c) || !c.includes('/')) throw new UsageError(`--${flag}: ${JSON.stringify(c)} is not a CIDR`);
  return cidrs;
}

function durationFlag(name: string, text: string): number {
  const ms = parseDuration(text);
  if (ms === null || ms <= 0) throw new UsageError(`--${name} must be a duration like 100ms or 15s, got ${JSON.stringify(text)}`);
  return ms;
}

/** Runs a long-lived component until SIGINT/SIGTERM, with /metrics /healthz /readyz. */
async function serve(
  logger: ReturnType<typeof createLogger>,
  component: { start(): Promise<void>; stop(): Promise<void>; ready(): string | null },
  registry: Registry,
  metricsAddress: string | undefined,
): Promise<number> {
  let server: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  const health: HealthSource = { health: () => null, ready: () => component.ready() };
  if (metricsAddress) {
    server = await startMetricsServer(metricsAddress, registry, health);
    logger.info({ address: metricsAddress }, 'serving /metrics, /healthz, /readyz');
  }
  let stopping: Promise<void> | undefined;
  const done = new Promise<number>((resolve) => {
    for (const signal of ['SIGINT', 'SIGTERM'] as const)
      process.once(signal, () => {
        stopping ??= (async () => {
          logger.info({ signal }, 'stopping');
          await component.stop();
          server?.close();
          server?.closeAllConnections();
        })();
        void stopping.then(
          () => resolve(typeof process.exitCode === 'number' ? process.exitCode : 0),
          () => resolve(1),
        );
      });
  });
  try {
    await component.start();
  } catch (err) {
    logger.fatal({ err: (err as Error).message }, 'cannot start');
    server?.close();
    await component.stop().catch(() => undefined);
    return 1;
  }
  return done;
}

async function agentCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      'node-name': { type: 'string', default: process.env.NODE_NAME },
      namespace: { type: 'string', default: process.env.POD_NAMESPACE },
      'operator-url': { type: 'string' },
      'operator-ca': { type: 'string' },
      'token-file': { type: 'string', default: '/var/run/secrets/kubernetes.io/serviceaccount/token' },
      kubeconfig: { type: 'string' },
      firewall: { type: 'string', default: 'auto' },
      instance: { type: 'string', default: DEFAULT_INSTANCE },
      'service-cidr': { type: 'string' },
      'pod-cidr': { type: 'string' },
      'allowed-commands': { type: 'string' },
      'allowed-hosts-deny': { type: 'string' },
      'node-resolv-conf': { type: 'string', default: '/etc/resolv.conf' },
      'no-anti-spoofing': { type: 'boolean', default: false },
      'report-interval': { type: 'string', default: '100ms' },
      'report-queue': { type: 'string', default: '10000' },
      'metrics-address': { type: 'string' },
      ...LOG_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  const node = values['node-name'];
  const namespace = values.namespace;
  if (!node) throw new UsageError('--node-name (or NODE_NAME) is required');
  if (!namespace) throw new UsageError('--namespace (or POD_NAMESPACE) is required');
  const urls = list(values['operator-url']);
  if (!urls.length) throw new UsageError('--operator-url is required');
  for (const u of urls) if (!/^https?:\/\//.test(u)) throw new UsageError(`--operator-url ${JSON.stringify(u)} must be an http(s) URL`);
  const backend = values.firewall!;
  if (!['auto', 'nftables', 'iptables'].includes(backend)) throw new UsageError('--firewall must be auto, nftables or iptables');
  const queue = Number(values['report-queue']);
  if (!Number.isInteger(queue) || queue < 1) throw new UsageError('--report-queue must be a positive integer');
  const { level, format } = logOptions(values);
  const logger = createLogger(level, 'kube-portsentry-agent', format).child({ node });
  const metrics = new Metrics();
  const instanceError = instanceProblem(values.instance!);
  if (instanceError) throw new UsageError(`--${instanceError}`);
  const names = firewallNames({ kind: 'agent', instance: values.instance! });
  const firewall = await selectFirewall(backend as 'auto' | 'nftables' | 'iptables', names);
  if (!firewall) throw new UsageError('no firewall backend (nft or iptables+ipset) found');
  // Loaded here, not at the top: the standalone sentry needs neither. The agent talks to the API
  // through api-connection.ts, not client-node's typed clients (~65 MB of RSS, docs/architecture.md).
  const [{ Agent }, { connectApi }] = await Promise.all([import('./agent/agent.js'), import('./k8s/api-connection.js')]);
  const agent = new Agent({
    api: await connectApi(values.kubeconfig),
    node,
    namespace,
    operatorUrls: urls,
    ...(values['operator-ca'] ? { operatorCaFile: values['operator-ca'] } : {}),
    tokenFile: values['token-file']!,
    firewall,
    routeMark: { metric: names.routeMetric },
    serviceCidrs: cidrList('service-cidr', values['service-cidr']),
    podCidrs: cidrList('pod-cidr', values['pod-cidr']),
    allowedCommands: pathList('allowed-commands', values['allowed-commands']),
    allowedHostsDeny: pathList('allowed-hosts-deny', values['allowed-hosts-deny']),
    nodeResolvConfs: list(values['node-resolv-conf']),
    antiSpoofing: !values['no-anti-spoofing'],
    reportIntervalMs: durationFlag('report-interval', values['report-interval']!),
    reportQueueCapacity: queue,
    logger,
    metrics,
  });
  return serve(logger, agent, metrics.registry, values['metrics-address']);
}

async function operatorCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      namespace: { type: 'string', default: process.env.POD_NAMESPACE },
      identity: { type: 'string', default: process.env.POD_NAME },
      'listen-address': { type: 'string', default: '0.0.0.0:8443' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'agent-service-account': { type: 'string', default: 'kube-portsentry-agent' },
      'token-audience': { type: 'string', default: 'kube-portsentry' },
      'lease-name': { type: 'string', default: 'kube-portsentry-operator' },
      'lease-duration': { type: 'string', default: '15s' },
      'network-policy-namespaces': { type: 'string' },
      calico: { type: 'boolean', default: false },
      cilium: { type: 'boolean', default: false },
      'service-cidr': { type: 'string' },
      'pod-cidr': { type: 'string' },
      'max-tracked-sources': { type: 'string', default: '100000' },
      'allow-unbound-tokens': { type: 'boolean', default: false },
      'allowed-commands': { type: 'string' },
      'allowed-hosts-deny': { type: 'string' },
      kubeconfig: { type: 'string' },
      'metrics-address': { type: 'string' },
      ...LOG_OPTIONS,
    },
    strict: true,
    allowPositionals: false,
  });
  if (!values.namespace) throw new UsageError('--namespace (or POD_NAMESPACE) is required');
  if (!values.identity) throw new UsageError('--identity (or POD_NAME) is required');
  if (!!values['tls-cert'] !== !!values['tls-key']) throw new UsageError('--tls-cert and --tls-key go together');
  const maxTracked = Number(values['max-tracked-sources']);
  if (!Number.isInteger(maxTracked) || maxTracked < 1) throw new UsageError('--max-tracked-sources must be a positive integer');
  const { level, format } = logOptions(values);
  const logger = createLogger(level, 'kube-portsentry-operator', format).child({ identity: values.identity });
  const [{ Operator }, { OperatorMetrics }, { connect }] = await Promise.all([
    import('./operator/operator.js'),
    import('./metrics/operator-metrics.js'),
    import('./k8s/client.js'),
  ]);
  const metrics = new OperatorMetrics();
  const operator = new Operator({
    kube: connect(values.kubeconfig, (verb, resource, code) => metrics.apiRequests.inc({ verb, resource, code })),
    namespace: values.namespace,
    identity: values.identity,
    leaseName: values['lease-name']!,
    leaseDurationMs: durationFlag('lease-duration', values['lease-duration']!),
    listenAddress: values['listen-address']!,
    ...(values['tls-cert'] ? { tls: { cert: values['tls-cert'], key: values['tls-key']! } } : {}),
    agentServiceAccount: values['agent-service-account']!,
    tokenAudience: values['token-audience']!,
    networkPolicyNamespaces: list(values['network-policy-namespaces']),
    calico: values.calico!,
    cilium: values.cilium!,
    serviceCidrs: cidrList('service-cidr', values['service-cidr']),
    podCidrs: cidrList('pod-cidr', values['pod-cidr']),
    maxTrackedSources: maxTracked,
    allowUnboundTokens: values['allow-unbound-tokens']!,
    allowedCommands: pathList('allowed-commands', values['allowed-commands']),
    allowedHostsDeny: pathList('allowed-hosts-deny', values['allowed-hosts-deny']),
    logger,
    metrics,
  });
  return serve(logger, operator, metrics.registry, values['metrics-address']);
}

// Each command's code is loaded when it runs: the agent and operator never load the policy
// files' YAML parser or the standalone sentry's admin commands (docs/architecture.md).
const admin = () => import('./cli/admin.js');
const tools = () => import('./cli/policy-tools.js');
const COMMANDS: Record<string, (args: string[]) => Promise<number>> = {
  run: async (args) => (await import('./cli/run.js')).runCommand(args),
  blocks: async (args) => (await admin()).blocksCommand(args),
  block: async (args) => (await admin()).blockCommand(args),
  unblock: async (args) => (await admin()).unblockCommand(args),
  status: async (args) => (await admin()).statusCommand(args),
  flush: async (args) => (await admin()).flushCommand(args),
  cleanup: async (args) => (await admin()).cleanupCommand(args),
  convert: async (args) => (await tools()).convertCommand(args),
  validate: async (args) => (await tools()).validateCommand(args),
  'default-policy': async () => (await tools()).defaultPolicyCommand(),
  crds: async (args) => (await tools()).crdsCommand(args),
};

export async function main(argv: string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    if (command && usageOf(command) !== 'Usage:\n' && wantsHelp(args)) {
      process.stdout.write(usageOf(command));
      return 0;
    }
    const handler = command ? COMMANDS[command] : undefined;
    if (handler) return await handler(args);
    switch (command) {
      case 'agent':
        return await agentCommand(args);
      case 'operator':
        return await operatorCommand(args);
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
    const [{ PolicyError }, { AdminError }] = await Promise.all([import('./policy/load.js'), admin()]);
    if (err instanceof PolicyError || (err as Error).name === 'ClassicConfError') {
      process.stderr.write(`kube-portsentry: ${(err as Error).message}\n`);
      return 2;
    }
    if (err instanceof UsageError || (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      const usage = command && usageOf(command) !== 'Usage:\n' ? usageOf(command) : USAGE;
      process.stderr.write(`kube-portsentry: ${(err as Error).message}\n\n${usage}`);
      return 2;
    }
    if (err instanceof AdminError || err instanceof ControlSocketError || err instanceof RecordError || err instanceof OwnershipError) {
      process.stderr.write(`kube-portsentry: ${(err as Error).message}\n`);
      return 1;
    }
    process.stderr.write(`kube-portsentry: ${(err as Error).stack ?? String(err)}\n`);
    return 1;
  }
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Long-lived components may leave idle keep-alive sockets behind; once stopped, leave.
if (['run', 'agent', 'operator'].includes(process.argv[2] ?? '')) process.exit(code);
