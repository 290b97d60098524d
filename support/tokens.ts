// ServiceAccount tokens as the kubelet gives them to a pod: a TokenRequest bound to a Pod
// object that names its node, so a TokenReview of it carries that node. The test API
// server runs no kubelet: the Pod object is only what the token is bound to.
import assert from 'node:assert/strict';
import type { ControlPlane } from './control-plane.js';

export interface BoundToken {
  token: string;
  pod: { name: string; uid: string };
}

/** Creates the Pod object on `node` (if it is not there yet) and a token bound to it. */
export async function podBoundToken(
  cp: ControlPlane,
  o: { namespace: string; serviceAccount: string; pod: string; node: string; audience?: string; expirationSeconds?: number },
): Promise<BoundToken> {
  const pods = `/api/v1/namespaces/${o.namespace}/pods`;
  let r = await cp.api('POST', pods, {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: o.pod },
    spec: { nodeName: o.node, serviceAccountName: o.serviceAccount, containers: [{ name: 'main', image: 'kube-portsentry:test' }] },
  });
  if (r.status === 409) r = await cp.api('GET', `${pods}/${o.pod}`);
  assert.ok(r.status === 200 || r.status === 201, JSON.stringify(r.body));
  const uid = (r.body as { metadata: { uid: string } }).metadata.uid;
  const t = await cp.api('POST', `/api/v1/namespaces/${o.namespace}/serviceaccounts/${o.serviceAccount}/token`, {
    apiVersion: 'authentication.k8s.io/v1',
    kind: 'TokenRequest',
    spec: {
      audiences: [o.audience ?? 'kube-portsentry'],
      expirationSeconds: o.expirationSeconds ?? 3600,
      boundObjectRef: { apiVersion: 'v1', kind: 'Pod', name: o.pod, uid },
    },
  });
  assert.equal(t.status, 201, JSON.stringify(t.body));
  return { token: (t.body as { status: { token: string } }).status.token, pod: { name: o.pod, uid } };
}
