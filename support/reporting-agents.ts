// Agents in a TestCluster's node namespaces that report to a test operator as the chart's
// would: each with the pod-bound token the kubelet gives its pod on that node, the nftables
// backend, metrics on AGENT_METRICS, and a short report interval.
import type { TestCluster, TestNode } from './cluster.js';
import type { ControlPlane } from './control-plane.js';
import { OPERATOR_NS } from './operator.js';
import { podBoundToken } from './tokens.js';
import type { Privileges } from './privilege.js';

export const AGENT_METRICS = 9109;

/**
 * `nodes`: only these (an agent restarted), their loopback already forwarded; `privileges`:
 * the agents run under capsh with only those (the chart's: NET_RAW and NET_ADMIN).
 */
export async function startReportingAgents(
  cluster: TestCluster,
  cp: ControlPlane,
  operatorUrl: string,
  extraArgs: (node: TestNode) => string[] = () => [],
  nodes?: TestNode[],
  privileges?: Privileges,
): Promise<void> {
  const opPort = Number(new URL(operatorUrl).port);
  if (!nodes) await cluster.forwardLoopback([Number(new URL(cp.url).port), opPort]);
  for (const node of nodes ?? cluster.nodes) {
    const { token } = await podBoundToken(cp, { namespace: OPERATOR_NS, serviceAccount: 'kube-portsentry-agent', pod: `agent-${node.name}`, node: node.name });
    const tokenFile = await cluster.writeFile(`token-${node.name}`, token);
    await cluster.startAgent(node, [
      '--namespace', OPERATOR_NS, '--kubeconfig', cp.kubeconfig, '--token-file', tokenFile, '--operator-url', `http://127.0.0.1:${opPort}`,
      '--firewall', 'nftables', '--metrics-address', `127.0.0.1:${AGENT_METRICS}`, '--report-interval', '50ms', '--log-level', 'debug',
      ...extraArgs(node),
    ], privileges);
  }
}
