// The cluster's credentials, made with openssl: a CA; the API server's serving certificate
// (valid for its fabric address, the kubernetes Service IP and names, and loopback); a
// client certificate the API server presents to kubelets (logs, exec); each kubelet's
// serving certificate; the service-account signing key; and static tokens for the admin,
// the controller manager, the scheduler, kube-proxy and each kubelet (user
// system:node:<name>, group system:nodes, which the Node authorizer and NodeRestriction
// admission act on).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runProgram } from '../../src/respond/run-program.js';
import { CLUSTER_DOMAIN, CONTROL_PLANE, KUBERNETES_SERVICE_IP, NODES } from './layout.js';

export interface Identity {
  readonly user: string;
  readonly groups: readonly string[];
  readonly token: string;
}

export interface Pki {
  readonly dir: string;
  readonly caCert: string;
  readonly identities: Readonly<Record<string, Identity>>;
}

const openssl = (args: string[]) => runProgram(['openssl', ...args], { timeoutMs: 60_000 });

async function keyAndCsr(dir: string, name: string, subject: string): Promise<void> {
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, `${name}.key`)]);
  await openssl(['req', '-new', '-key', join(dir, `${name}.key`), '-subj', subject, '-out', join(dir, `${name}.csr`)]);
}

async function sign(dir: string, name: string, extensions: string): Promise<void> {
  const ext = join(dir, `${name}.ext`);
  await writeFile(ext, extensions);
  await openssl([
    'x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'),
    '-CAcreateserial', '-days', '7', '-sha256', '-extfile', ext, '-out', join(dir, `${name}.crt`),
  ]);
}

export async function createPki(dir: string): Promise<Pki> {
  await mkdir(dir, { recursive: true });
  await openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(dir, 'ca.key')]);
  await openssl(['req', '-x509', '-new', '-key', join(dir, 'ca.key'), '-subj', '/CN=kps-e2e-ca', '-days', '7', '-out', join(dir, 'ca.crt')]);

  const serviceNames = ['kubernetes', 'kubernetes.default', 'kubernetes.default.svc', `kubernetes.default.svc.${CLUSTER_DOMAIN}`];
  await keyAndCsr(dir, 'apiserver', '/CN=kube-apiserver');
  await sign(
    dir,
    'apiserver',
    `subjectAltName=${[...serviceNames.map((n) => `DNS:${n}`), `IP:${CONTROL_PLANE.ip}`, `IP:${KUBERNETES_SERVICE_IP}`, 'IP:127.0.0.1'].join(',')}\n` +
      'extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n',
  );
  await keyAndCsr(dir, 'apiserver-kubelet-client', '/O=system:masters/CN=kube-apiserver-kubelet-client');
  await sign(dir, 'apiserver-kubelet-client', 'extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n');
  for (const node of NODES) {
    await keyAndCsr(dir, `kubelet-${node.name}`, `/CN=${node.name}`);
    await sign(dir, `kubelet-${node.name}`, `subjectAltName=DNS:${node.name},IP:${node.ip}\nextendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n`);
  }
  await openssl(['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', join(dir, 'sa.key')]);
  await openssl(['pkey', '-in', join(dir, 'sa.key'), '-pubout', '-out', join(dir, 'sa.pub')]);

  const identity = (user: string, ...groups: string[]): Identity => ({ user, groups, token: randomBytes(24).toString('hex') });
  const identities: Record<string, Identity> = {
    admin: identity('kps-e2e-admin', 'system:masters'),
    'kube-controller-manager': identity('system:kube-controller-manager'),
    'kube-scheduler': identity('system:kube-scheduler'),
    'kube-proxy': identity('system:kube-proxy'),
  };
  for (const node of NODES) identities[node.name] = identity(`system:node:${node.name}`, 'system:nodes');
  await writeFile(
    join(dir, 'tokens.csv'),
    Object.values(identities)
      .map((i) => `${i.token},${i.user},${i.user},"${i.groups.join(',')}"`)
      .join('\n') + '\n',
    { mode: 0o600 },
  );
  return { dir, caCert: await readFile(join(dir, 'ca.crt'), 'utf8'), identities };
}

/** A kubeconfig for one identity, against the API server at `server`. */
export function kubeconfig(pki: Pki, who: string, server: string): string {
  const id = pki.identities[who];
  if (!id) throw new Error(`no identity ${who}`);
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'kps-e2e', cluster: { server, 'certificate-authority-data': Buffer.from(pki.caCert).toString('base64') } }],
    users: [{ name: who, user: { token: id.token } }],
    contexts: [{ name: 'kps-e2e', context: { cluster: 'kps-e2e', user: who } }],
    'current-context': 'kps-e2e',
  });
}
