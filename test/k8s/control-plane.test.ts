// The test control plane itself: it starts, kubectl talks to it over verified TLS, and
// service-account tokens can be requested and reviewed (what agent authentication needs).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useControlPlane } from '../../support/control-plane.js';

const env = useControlPlane();

test('kubectl reaches the API server and sees the built-in namespaces', async (t) => {
  const cp = env.cp;
  if (!cp) return t.skip(env.why);
  const { stdout } = await cp.kubectl(['get', 'namespaces', '-o', 'name']);
  assert.match(stdout, /namespace\/kube-system/);
  assert.match(stdout, /namespace\/default/);
  const version = await cp.kubectl(['version', '-o', 'json']);
  assert.match((JSON.parse(version.stdout) as { serverVersion: { gitVersion: string } }).serverVersion.gitVersion, /^v1\.3\d\./);
});

test('TokenRequest issues a service-account token and TokenReview accepts it', async (t) => {
  const cp = env.cp;
  if (!cp) return t.skip(env.why);
  await cp.kubectl(['create', 'namespace', 'kps-auth']);
  await cp.kubectl(['-n', 'kps-auth', 'create', 'serviceaccount', 'agent']);
  const token = (await cp.kubectl(['-n', 'kps-auth', 'create', 'token', 'agent', '--audience', 'kube-portsentry'])).stdout.trim();
  const review = await cp.api('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, audiences: ['kube-portsentry'] },
  });
  assert.equal(review.status, 201);
  const status = (review.body as { status: { authenticated: boolean; user: { username: string } } }).status;
  assert.equal(status.authenticated, true);
  assert.equal(status.user.username, 'system:serviceaccount:kps-auth:agent');
  const wrongAudience = await cp.api('POST', '/apis/authentication.k8s.io/v1/tokenreviews', {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenReview',
    spec: { token, audiences: ['someone-else'] },
  });
  assert.equal((wrongAudience.body as { status: { authenticated?: boolean } }).status.authenticated ?? false, false);
});
