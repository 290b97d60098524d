// The agent's way to the API (src/k8s/api-connection.ts) against the real API server: the
// pod's service account (CA and rotated token file), errors with the API's own message,
// requests counted by verb and resource, and a watch that delivers events and ends cleanly.
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { ApiError, connectApi, inClusterConfig, openApiConnection } from '../../src/k8s/api-connection.js';
import { describeError, statusOf } from '../../src/k8s/api-errors.js';
import { selfSignedCertificate } from '../../support/cluster.js';
import { useControlPlane } from '../../support/control-plane.js';

const NS = 'kps-api-connection';

describe('api-connection against the real API server', { concurrency: false }, () => {
  const env = useControlPlane(async (cp) => void (await cp.kubectl(['create', 'namespace', NS])));

  test("in-cluster: the pod's CA verifies the server, and a rotated token is used at the next request", async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const dir = join(cp.dir, 'serviceaccount');
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'ca.crt'), cp.ca);
    await writeFile(join(dir, 'token'), 'not-a-token\n');
    const url = new URL(cp.url);
    const api = openApiConnection(inClusterConfig(dir, { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }));
    const refused = await api.request('GET', `/api/v1/namespaces/${NS}`).then(() => undefined, (err: unknown) => err);
    assert.ok(refused instanceof ApiError, `refused: ${String(refused)}`);
    assert.equal(statusOf(refused), 401);
    await writeFile(join(dir, 'token'), `${cp.adminToken}\n`);
    const ns = (await api.request('GET', `/api/v1/namespaces/${NS}`)) as { metadata: { name: string } };
    assert.equal(ns.metadata.name, NS, 'the new token, without a new connection');
  });

  test('in-cluster: a CA that did not sign the server is refused', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const dir = join(cp.dir, 'serviceaccount-wrong-ca');
    await mkdir(dir, { recursive: true });
    const other = await selfSignedCertificate(cp.dir, 'other-ca');
    await writeFile(join(dir, 'ca.crt'), await readFile(other.cert));
    await writeFile(join(dir, 'token'), cp.adminToken);
    const url = new URL(cp.url);
    const api = openApiConnection(inClusterConfig(dir, { KUBERNETES_SERVICE_HOST: url.hostname, KUBERNETES_SERVICE_PORT: url.port }));
    await assert.rejects(api.request('GET', '/api/v1/namespaces'), (err: Error) => !(err instanceof ApiError) && /certificate|self.signed/i.test(err.message));
  });

  test('not in a cluster and no kubeconfig: a clear error', () => {
    assert.throws(() => inClusterConfig('/nonexistent', {}), /not in a cluster \(KUBERNETES_SERVICE_HOST is unset\)/);
  });

  test("errors carry the API's message; requests are counted by verb, resource and code", async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const seen: string[] = [];
    const api = await connectApi(cp.kubeconfig, (verb, resource, code) => seen.push(`${verb} ${resource} ${code}`));
    const missing = await api.request('GET', `/api/v1/namespaces/${NS}/configmaps/nowhere`).then(() => undefined, (err: unknown) => err);
    assert.equal(statusOf(missing), 404);
    assert.match(describeError(missing), /^HTTP 404: configmaps "nowhere" not found$/);
    await api.request('POST', `/api/v1/namespaces/${NS}/configmaps`, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'counted' } });
    assert.deepEqual(seen, ['get configmaps 404', 'create configmaps 201']);
  });

  test('a watch delivers added, modified and deleted objects, and ends cleanly when aborted', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const api = await connectApi(cp.kubeconfig);
    const list = (await api.request('GET', `/api/v1/namespaces/${NS}/configmaps`)) as { metadata: { resourceVersion: string } };
    const events: string[] = [];
    let ended: unknown = 'not yet';
    const controller = await api.watch(
      `/api/v1/namespaces/${NS}/configmaps`,
      { resourceVersion: list.metadata.resourceVersion, fieldSelector: 'metadata.name=watched' },
      (type, obj) => events.push(`${type} ${(obj as { metadata: { name: string } }).metadata.name}`),
      (err) => (ended = err),
    );
    const path = `/api/v1/namespaces/${NS}/configmaps`;
    await cp.api('POST', path, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'watched' } });
    await cp.kubectl(['-n', NS, 'label', 'configmap', 'watched', 'changed=yes']);
    await cp.api('DELETE', `${path}/watched`);
    for (let i = 0; i < 100 && events.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(events, ['ADDED watched', 'MODIFIED watched', 'DELETED watched']);
    controller.abort();
    for (let i = 0; i < 100 && ended === 'not yet'; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(ended, null, 'done(null) once, after the abort');
  });

  test('a watch the server refuses reports its status through done', async (t) => {
    const cp = env.cp;
    if (!cp) return t.skip(env.why);
    const api = await connectApi(cp.kubeconfig);
    const failure = await new Promise<unknown>((resolve) => void api.watch('/apis/nowhere.example/v1/things', {}, () => undefined, resolve));
    assert.equal(statusOf(failure), 404);
  });
});
