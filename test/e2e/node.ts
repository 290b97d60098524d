// One node: containerd (Debian's package, runc), the kubelet and kube-proxy, in the node's
// network namespace with a filesystem view of its own (node-init.sh). Their configuration
// is what a kubeadm or kind node would have, with the few host checks this machine needs
// relaxed and each one commented.
import { copyFile, mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runProgram } from '../../src/respond/run-program.js';
import { createCgroup } from './cgroups.js';
import { launch } from './launch.js';
import {
  CGROUP, CLUSTER_CIDR, CLUSTER_DOMAIN, CONTROL_PLANE, API_PORT, DNS_SERVICE_IP, UPSTREAM_DNS,
  containerdSocket, nodeDir, type NodeSpec,
} from './layout.js';
import { kubeconfig, type Pki } from './pki.js';

const NODE_INIT = fileURLToPath(new URL('../../../test/e2e/node-init.sh', import.meta.url));

function containerdConfig(): string {
  return `version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs"]

[grpc]
  address = "/run/containerd/containerd.sock"

[plugins."io.containerd.internal.v1.opt"]
  path = "/var/lib/containerd/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  # This machine withholds CAP_SYS_RESOURCE, so no process here may lower an OOM score
  # below its parent's; keep containers' scores at or above containerd's own.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
`;
}

function kubeletConfig(node: NodeSpec): object {
  return {
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    // This machine's kernel mounts cgroup v1 only; kubelet 1.35 refuses it unless told.
    failCgroupV1: false,
    cgroupDriver: 'cgroupfs',
    // Each node's pods in a cgroup subtree of its own, under the cluster's.
    cgroupRoot: `/${CGROUP}/${node.name}`,
    containerRuntimeEndpoint: 'unix:///run/containerd/containerd.sock',
    address: node.ip,
    readOnlyPort: 0,
    healthzBindAddress: '127.0.0.1',
    authentication: {
      anonymous: { enabled: false },
      webhook: { enabled: true },
      x509: { clientCAFile: '/var/lib/kubelet/pki/ca.crt' },
    },
    authorization: { mode: 'Webhook' },
    tlsCertFile: '/var/lib/kubelet/pki/kubelet.crt',
    tlsPrivateKeyFile: '/var/lib/kubelet/pki/kubelet.key',
    clusterDNS: [DNS_SERVICE_IP],
    clusterDomain: CLUSTER_DOMAIN,
    resolvConf: '/etc/resolv.conf',
    rotateCertificates: false,
  };
}

function kubeProxyConfig(node: NodeSpec): object {
  return {
    apiVersion: 'kubeproxy.config.k8s.io/v1alpha1',
    kind: 'KubeProxyConfiguration',
    clientConnection: { kubeconfig: '/var/lib/kube-proxy/kubeconfig' },
    mode: 'nftables',
    clusterCIDR: CLUSTER_CIDR,
    hostnameOverride: node.name,
    metricsBindAddress: '127.0.0.1:10249',
    healthzBindAddress: '127.0.0.1:10256',
    // The conntrack table's size and timeouts are the host kernel's, shared by every
    // namespace on this machine: leave them as they are.
    conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: '0s', tcpCloseWaitTimeout: '0s' },
  };
}

/** Writes the node's filesystem and configuration, then starts its init. */
export async function startNode(node: NodeSpec, pki: Pki, bin: string): Promise<void> {
  const dir = nodeDir(node);
  for (const d of ['etc/cni/net.d', 'run', 'var/lib/kubelet/pki', 'var/lib/kube-proxy', 'var/lib/kps-e2e', 'var/log', 'var/tmp']) {
    await mkdir(join(dir, d), { recursive: true });
  }
  // The node's /var and /run replace the host's inside it; keep Debian's links between them.
  await symlink('/run', join(dir, 'var/run'));
  await symlink('/run/lock', join(dir, 'var/lock'));
  await writeFile(join(dir, 'etc/resolv.conf'), `nameserver ${UPSTREAM_DNS}\n`);
  await writeFile(join(dir, 'var/lib/kps-e2e/containerd.toml'), containerdConfig());
  const server = `https://${CONTROL_PLANE.ip}:${API_PORT}`;
  await writeFile(join(dir, 'var/lib/kubelet/kubeconfig'), kubeconfig(pki, node.name, server), { mode: 0o600 });
  await writeFile(join(dir, 'var/lib/kubelet/config.json'), JSON.stringify(kubeletConfig(node), null, 2));
  await copyFile(join(pki.dir, 'ca.crt'), join(dir, 'var/lib/kubelet/pki/ca.crt'));
  await copyFile(join(pki.dir, `kubelet-${node.name}.crt`), join(dir, 'var/lib/kubelet/pki/kubelet.crt'));
  await copyFile(join(pki.dir, `kubelet-${node.name}.key`), join(dir, 'var/lib/kubelet/pki/kubelet.key'));
  await writeFile(join(dir, 'var/lib/kube-proxy/kubeconfig'), kubeconfig(pki, 'kube-proxy', server), { mode: 0o600 });
  await writeFile(join(dir, 'var/lib/kube-proxy/config.json'), JSON.stringify(kubeProxyConfig(node), null, 2));

  const cgroup = `${CGROUP}/${node.name}`;
  await createCgroup(`${cgroup}/system`);
  await createCgroup(cgroup);
  await launch(`${cgroup}/system`, node.ns, join(dir, 'init.log'), [
    'unshare', '--mount', '--propagation', 'slave', 'bash', NODE_INIT, dir, bin, node.name, node.ip,
  ]);
}

const ctr = (node: NodeSpec, args: string[], timeoutMs = 120_000) =>
  runProgram(['ctr', '--address', containerdSocket(node), '--namespace', 'k8s.io', ...args], { timeoutMs });

/** Loads the OCI archives (images.sh) into the node's containerd. */
export async function loadImages(node: NodeSpec, imagesDir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await ctr(node, ['version']);
      break;
    } catch (err) {
      if (i > 150) throw new Error(`containerd on ${node.name} did not start: ${(err as Error).message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const list = await readFile(join(imagesDir, 'images.txt'), 'utf8');
  for (const line of list.split('\n').filter(Boolean)) {
    const [name, file] = line.split(' ') as [string, string];
    // As `kind load` does: unpacked for the CRI's snapshotter, so a pod starts at once.
    await ctr(node, ['images', 'import', '--snapshotter', 'overlayfs', join(imagesDir, file)]);
    await ctr(node, ['images', 'check', `name==${name}`]);
  }
}

/** The bridge network for the node's pods, once the controller manager gave it a pod CIDR. */
export async function writeCniConfig(node: NodeSpec, podCidr: string): Promise<void> {
  const config = {
    cniVersion: '1.0.0',
    name: 'kps-e2e',
    plugins: [
      {
        type: 'bridge',
        bridge: 'cni0',
        isGateway: true,
        ipMasq: true,
        hairpinMode: true,
        ipam: { type: 'host-local', ranges: [[{ subnet: podCidr }]], routes: [{ dst: '0.0.0.0/0' }] },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
  await writeFile(join(nodeDir(node), 'etc/cni/net.d/10-kps-e2e.conflist'), JSON.stringify(config, null, 2));
}
