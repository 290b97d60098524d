// The one policy model. The standalone YAML file and the PortSentryPolicy custom resource
// share this shape (`spec` below), so a file that `kube-portsentry run` accepts can be
// applied to a cluster unchanged.

export type Protocol = 'tcp' | 'udp';

/** How a protocol is watched: classic tcp/udp = bind, stcp/sudp = stealth, atcp/audp = advanced. */
export type DetectMode = 'bind' | 'stealth' | 'advanced' | 'off';

/** Classic BLOCK_TCP/BLOCK_UDP: 0 = alert, 1 = block, 2 = command only. */
export type Action = 'alert' | 'block' | 'command';

export type FirewallBackend = 'auto' | 'nftables' | 'iptables' | 'none';

/**
 * What makes a detection a block on every node. verified: a completed handshake seen by any
 * node. corroborated: that, or two or more nodes reporting the source, handshake or not.
 * singleNode: one node's report.
 */
export type ClusterEvidence = 'verified' | 'corroborated' | 'singleNode';

/** A port or an inclusive range, as written by the user: 80 or "6000-6063". */
export type PortSpec = number | string;

export interface ProtocolSpec {
  mode: DetectMode;
  /** Tripwire ports for bind and stealth modes. */
  ports: PortSpec[];
  /** Advanced mode watches every port below this one. */
  advancedLimit: number;
  /** Ports advanced mode never reports. */
  exclude: PortSpec[];
}

export interface TriggerSpec {
  /** A source is a scanner when it sends more than `count` distinct probes within `window`. */
  count: number;
  /** Duration string, e.g. "1h". */
  window: string;
  /** Cap on sources tracked at once; the least recently seen is forgotten first. */
  maxTrackedSources: number;
}

export interface RouteSpec {
  /** Add a route for each blocked address. */
  enabled: boolean;
  /** Classic KILL_ROUTE as an argument vector; empty means a built-in blackhole route. */
  command: string[];
}

export interface HostsDenySpec {
  enabled: boolean;
  path: string;
  /** Classic KILL_HOSTS_DENY line, with $TARGET$ and $PORT$. */
  line: string;
}

export interface ResponseSpec {
  tcp: Action;
  udp: Action;
  /** Cluster only: node keeps detection and blocks on the node; cluster also correlates across nodes. */
  scope: Scope;
  /** How long a block lasts before it is lifted (duration string). */
  duration: string;
  /** Only detections whose source is proven (a completed TCP handshake) may block. */
  verifiedOnly: boolean;
  /** Cluster only: what makes a detection a block on every node (see ClusterEvidence). */
  clusterEvidence: ClusterEvidence;
  /** Circuit breaker: new blocks allowed per minute; more are alerted, counted, not blocked. */
  maxBlocksPerMinute: number;
  firewall: FirewallBackend;
  /**
   * nftables rules block a stealth/advanced-mode source at its first probe, in the kernel,
   * and tell the sentry afterwards (nflog). Needs trigger count 0, verifiedOnly off, nftables.
   */
  kernelFastPath: boolean;
  route: RouteSpec;
  hostsDeny: HostsDenySpec;
  /** Classic KILL_RUN_CMD as an argument vector: $TARGET$ $PORT$ $MODE$ are substituted. */
  command: string[];
  /** Run the command before the blocking actions (classic KILL_RUN_CMD_FIRST). */
  runCommandFirst: boolean;
  /** Optional argument vector run when a block is lifted. */
  unblockCommand: string[];
  /** Text sent to a TCP connection in bind mode before it is closed (classic PORT_BANNER). */
  banner: string;
  /** Resolve the source's name for logs and history (classic RESOLVE_HOST); never used in commands. */
  resolveHosts: boolean;
}

export interface FilesSpec {
  /** Classic history file: one line per block, kept across restarts. Empty disables it. */
  history: string;
  /** Classic blocked file: the blocks of this run. Empty disables it. */
  blocked: string;
}

export interface LabelRequirement {
  key: string;
  operator: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  values?: string[];
}

/** A Kubernetes label selector over node labels; empty selects every node. */
export interface NodeSelector {
  matchLabels?: Record<string, string>;
  matchExpressions: LabelRequirement[];
}

export type Scope = 'node' | 'cluster';

export interface PolicySpec {
  /** Cluster only: the nodes this policy applies to. */
  nodeSelector: NodeSelector;
  /** Cluster only: the highest priority wins where several policies select a node. */
  priority: number;
  tcp: ProtocolSpec;
  udp: ProtocolSpec;
  trigger: TriggerSpec;
  /** CIDRs (or single addresses), IPv4 and IPv6, never counted or blocked. */
  ignore: string[];
  response: ResponseSpec;
  files: FilesSpec;
}

export interface PolicyDocument {
  apiVersion: 'kube-portsentry.io/v1alpha1';
  kind: 'PortSentryPolicy';
  metadata: { name: string };
  spec: PolicySpec;
}

/** A port range after parsing, inclusive on both ends. */
export interface PortRange {
  from: number;
  to: number;
}
