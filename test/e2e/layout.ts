// The real cluster's shape: names, addresses and paths, in one place. Everything lives in
// network namespaces of its own, joined by a bridge in a "fabric" namespace that also
// routes between them (what kind's Docker network and a cloud's router are), with
// addresses from the benchmarking range 198.18.0.0/15 and private cluster ranges, so no
// test traffic leaves these namespaces.

export const PREFIX = 'kpse2e';
/** State of a running cluster (data, configs, logs); removed by teardown. */
export const STATE = '/var/lib/kps-e2e';
/** The cgroup (in every v1 hierarchy) holding every process the cluster runs. */
export const CGROUP = 'kps-e2e';

export const FABRIC_NS = `${PREFIX}-fabric`;
export const GATEWAY = '198.18.8.1';
export const PREFIX_LEN = 24;
/** The nodes' upstream resolver, named in each node's /etc/resolv.conf (not a real server). */
export const UPSTREAM_DNS = '198.18.8.53';

export const CONTROL_PLANE = { ns: `${PREFIX}-cp`, ip: '198.18.8.2', veth: 'cp' } as const;
export const SCANNER = { ns: `${PREFIX}-scan`, ip: '198.18.8.100', veth: 'scan' } as const;
/** Prometheus, scraping agents and operators over the fabric, as from a monitoring host. */
export const MONITOR = { ns: `${PREFIX}-mon`, ip: '198.18.8.90', veth: 'mon' } as const;

export interface NodeSpec {
  readonly name: string;
  readonly ns: string;
  readonly ip: string;
  readonly veth: string;
}
export const NODES: readonly NodeSpec[] = [1, 2].map((i) => ({
  name: `${PREFIX}-node${i}`,
  ns: `${PREFIX}-node${i}`,
  ip: `198.18.8.${10 + i}`,
  veth: `n${i}`,
}));

export const API_PORT = 6443;
export const SERVICE_CIDR = '10.96.0.0/16';
export const KUBERNETES_SERVICE_IP = '10.96.0.1';
export const DNS_SERVICE_IP = '10.96.0.10';
export const CLUSTER_CIDR = '10.244.0.0/16';
export const CLUSTER_DOMAIN = 'cluster.local';

export const nodeDir = (node: NodeSpec): string => `${STATE}/nodes/${node.name}`;
export const containerdSocket = (node: NodeSpec): string => `${nodeDir(node)}/run/containerd/containerd.sock`;
