// The operator in the test process, against the test control plane: for tests that drive
// its report endpoint directly and read what it wrote to the API.
import { request } from 'node:http';
import { connect } from '../src/k8s/client.js';
import { createLogger } from '../src/log/logger.js';
import { OperatorMetrics } from '../src/metrics/operator-metrics.js';
import { Operator, type OperatorOptions } from '../src/operator/operator.js';
import { freePort } from './free-port.js';
import { type ControlPlane } from './control-plane.js';

export const OPERATOR_NS = 'kube-portsentry';
export const AGENT_USER = `system:serviceaccount:${OPERATOR_NS}:kube-portsentry-agent`;

export interface TestOperator {
  operator: Operator;
  metrics: OperatorMetrics;
  /** Base URL of its report endpoint (plain HTTP). */
  url: string;
  stop(): Promise<void>;
}

/** The CRDs and the operator's namespace, once per control plane. */
export async function prepareCluster(cp: ControlPlane): Promise<void> {
  await cp.kubectl(['apply', '-f', 'crds/']);
  await cp.kubectl(['wait', '--for', 'condition=established', 'crd/portsentrypolicies.kube-portsentry.io', 'crd/blockedhosts.kube-portsentry.io']);
  await cp.kubectl(['create', 'namespace', OPERATOR_NS]);
}

/** Starts an operator and waits until it leads with its caches synced. */
export async function startTestOperator(cp: ControlPlane, over: Partial<OperatorOptions> = {}): Promise<TestOperator> {
  const metrics = new OperatorMetrics(false);
  const port = await freePort();
  const operator = new Operator({
    kube: connect(cp.kubeconfig, (verb, resource, code) => metrics.apiRequests.inc({ verb, resource, code })),
    namespace: OPERATOR_NS,
    identity: `test-operator-${port}`,
    leaseName: `kube-portsentry-operator-${port}`,
    leaseDurationMs: 3000,
    listenAddress: `127.0.0.1:${port}`,
    agentServiceAccount: 'kube-portsentry-agent',
    tokenAudience: 'kube-portsentry',
    networkPolicyNamespaces: [],
    calico: false,
    cilium: false,
    serviceCidrs: [],
    maxTrackedSources: 100_000,
    logger: createLogger(process.env.KPS_TEST_LOG === '1' ? 'debug' : 'silent'),
    metrics,
    ...over,
  });
  await operator.start();
  const deadline = Date.now() + 15_000;
  while (!(operator.isLeader && operator.ready() === null)) {
    if (Date.now() > deadline) throw new Error('the test operator did not lead within 15 s');
    await new Promise((r) => setTimeout(r, 100));
  }
  return { operator, metrics, url: `http://127.0.0.1:${port}`, stop: () => operator.stop() };
}

/** POSTs a report body with a bearer token; resolves with the HTTP status. */
export function postReport(url: string, token: string | null, body: unknown): Promise<number> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/v1/reports`,
      { method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}
