// The control plane, in its own network namespace on the fabric: etcd, kube-apiserver
// (serving the fabric address, with the Node authorizer and NodeRestriction a kubelet
// meets in any real cluster), kube-controller-manager (which allocates pod CIDRs and
// publishes kube-root-ca.crt) and kube-scheduler.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createCgroup } from './cgroups.js';
import { launch } from './launch.js';
import { API_PORT, CGROUP, CLUSTER_CIDR, CONTROL_PLANE, SERVICE_CIDR, STATE } from './layout.js';
import { inNs } from './network.js';
import { kubeconfig, type Pki } from './pki.js';

export const CP_DIR = `${STATE}/control-plane`;

export async function startControlPlane(pki: Pki, bin: string): Promise<void> {
  await mkdir(CP_DIR, { recursive: true });
  const cgroup = `${CGROUP}/control-plane`;
  await createCgroup(cgroup);
  const p = (f: string) => join(pki.dir, f);
  const run = (name: string, args: string[]) => launch(cgroup, CONTROL_PLANE.ns, join(CP_DIR, `${name}.log`), [join(bin, name), ...args]);

  await run('etcd', [
    '--data-dir', join(CP_DIR, 'etcd'),
    '--listen-client-urls', 'http://127.0.0.1:2379', '--advertise-client-urls', 'http://127.0.0.1:2379',
    '--listen-peer-urls', 'http://127.0.0.1:2380', '--initial-advertise-peer-urls', 'http://127.0.0.1:2380',
    '--initial-cluster', 'default=http://127.0.0.1:2380',
    '--unsafe-no-fsync',
  ]);
  await run('kube-apiserver', [
    '--etcd-servers', 'http://127.0.0.1:2379',
    '--bind-address', '0.0.0.0', '--secure-port', String(API_PORT), '--advertise-address', CONTROL_PLANE.ip,
    '--tls-cert-file', p('apiserver.crt'), '--tls-private-key-file', p('apiserver.key'),
    '--client-ca-file', p('ca.crt'),
    '--token-auth-file', p('tokens.csv'),
    '--service-account-key-file', p('sa.pub'), '--service-account-signing-key-file', p('sa.key'),
    '--service-account-issuer', 'https://kubernetes.default.svc.cluster.local',
    '--authorization-mode', 'Node,RBAC',
    '--enable-admission-plugins', 'NodeRestriction',
    '--service-cluster-ip-range', SERVICE_CIDR,
    '--kubelet-client-certificate', p('apiserver-kubelet-client.crt'), '--kubelet-client-key', p('apiserver-kubelet-client.key'),
    '--kubelet-certificate-authority', p('ca.crt'),
    '--kubelet-preferred-address-types', 'InternalIP',
    '--allow-privileged=true',
  ]);
  await waitForApi(pki, bin);

  for (const component of ['kube-controller-manager', 'kube-scheduler']) {
    await writeFile(join(CP_DIR, `${component}.kubeconfig`), kubeconfig(pki, component, `https://127.0.0.1:${API_PORT}`), { mode: 0o600 });
  }
  const kc = (c: string) => join(CP_DIR, `${c}.kubeconfig`);
  await run('kube-controller-manager', [
    '--kubeconfig', kc('kube-controller-manager'),
    '--authentication-kubeconfig', kc('kube-controller-manager'), '--authorization-kubeconfig', kc('kube-controller-manager'),
    '--bind-address', '127.0.0.1',
    '--service-account-private-key-file', p('sa.key'), '--root-ca-file', p('ca.crt'),
    '--use-service-account-credentials',
    '--allocate-node-cidrs', '--cluster-cidr', CLUSTER_CIDR, '--node-cidr-mask-size', '24',
    '--service-cluster-ip-range', SERVICE_CIDR,
    '--cluster-signing-cert-file', p('ca.crt'), '--cluster-signing-key-file', p('ca.key'),
    '--leader-elect=false',
  ]);
  await run('kube-scheduler', [
    '--kubeconfig', kc('kube-scheduler'),
    '--authentication-kubeconfig', kc('kube-scheduler'), '--authorization-kubeconfig', kc('kube-scheduler'),
    '--bind-address', '127.0.0.1',
    '--leader-elect=false',
  ]);
}

export const ADMIN_KUBECONFIG = join(CP_DIR, 'admin.kubeconfig');

async function waitForApi(pki: Pki, bin: string): Promise<void> {
  await writeFile(ADMIN_KUBECONFIG, kubeconfig(pki, 'admin', `https://127.0.0.1:${API_PORT}`), { mode: 0o600 });
  const deadline = Date.now() + 90_000;
  for (;;) {
    const ok = await inNs(CONTROL_PLANE.ns, [join(bin, 'kubectl'), '--kubeconfig', ADMIN_KUBECONFIG, 'get', '--raw', '/readyz'], 10_000)
      .then(() => true)
      .catch(() => false);
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`kube-apiserver not ready within 90 s (see ${CP_DIR}/kube-apiserver.log)`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
