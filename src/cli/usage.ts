// What each command takes, as `kube-portsentry COMMAND --help` prints it.
const POLICY = `[--policy FILE.yaml | --config portsentry.conf [-tcp|-stcp|-atcp] [-udp|-sudp|-audp] [--defaults FILE]]
                      [--state-dir DIR]`;
const POLICY_HELP = `      --policy FILE     a YAML policy; --config FILE a classic portsentry.conf (with the classic
                        mode flags, or --defaults /etc/default/portsentry for Debian's TCP_MODE and
                        UDP_MODE); neither: the bundled default policy. The files it names (history,
                        hosts.deny) and the block record next to the history file are the ones used.
      --state-dir DIR   keep the block record and lock files in DIR instead of next to the history file`;
const SOCKET_HELP = `      --socket PATH     the running sentry's control socket (default /run/kube-portsentry/control.sock)`;

export const COMMAND_USAGE: Record<string, string> = {
  run: `  kube-portsentry run ${POLICY}
                      [--socket PATH] [--flush-on-exit] [--metrics-address HOST:PORT]
                      [--log-level LEVEL] [--log-format json|text|classic]
      Run the standalone sentry. Blocks are recorded next to the history file and outlive the
      process: a restart keeps those in force and lifts those that expired meanwhile.
${POLICY_HELP}
${SOCKET_HELP}
      --flush-on-exit   remove everything the sentry owns when it stops (by default blocks stay)
      --log-format      json (default when stdout is not a terminal), text (at a terminal), or
                        classic: PortSentry's own syslog lines (attackalert:, adminalert:)
`,
  blocks: `  kube-portsentry blocks [--json] ${POLICY} [--socket PATH]
      List the blocks in force: address, how it was made (detected or manual), reason, ports,
      since, expires. From the running sentry, or from the record when it is not running.
`,
  block: `  kube-portsentry block ADDR|CIDR [--duration D] [--reason TEXT] ${POLICY} [--socket PATH]
      Block an address or network with the policy's blocking actions (firewall set, route,
      hosts.deny), for D (30m, 12h, 1h30m) or until unblocked. The host's own addresses and the
      policy's ignore list are refused.
`,
  unblock: `  kube-portsentry unblock ADDR|CIDR ${POLICY} [--socket PATH]
      Lift a block, detected or manual: from the kernel, the routes, hosts.deny and the record.
      The source's trigger state is reset too, so its next probe is judged afresh.
`,
  status: `  kube-portsentry status [--json] ${POLICY} [--socket PATH]
      Show the modes, the watched ports, ports skipped as in use, tracked sources, blocks and
      the last detections of the running sentry (or the record's blocks when it is not running).
`,
  flush: `  kube-portsentry flush ${POLICY} [--socket PATH]
      Remove everything the standalone sentry owns: its firewall table or sets, its routes, its
      hosts.deny lines and the block record (each block lifted, unblock commands run). Stop the
      sentry first.
`,
  cleanup: `  kube-portsentry cleanup [--instance NAME]
      Remove what a node agent owned on this host (its firewall table or sets, its routes), after
      the agent is gone (helm uninstall): NAME is the Helm release (default "default").
`,
  agent: `  kube-portsentry agent --node-name NAME --namespace NS --operator-url URL[,URL...]
                        [--instance RELEASE] [--operator-ca FILE] [--token-file FILE] [--kubeconfig FILE]
                        [--firewall auto|nftables|iptables] [--service-cidr CIDR[,CIDR...]]
                        [--pod-cidr CIDR[,CIDR...]] [--allowed-commands PATH[,PATH...]]
                        [--allowed-hosts-deny PATH[,PATH...]] [--node-resolv-conf FILE[,FILE...]]
                        [--no-anti-spoofing] [--report-interval 100ms] [--metrics-address HOST:PORT]
                        [--log-level LEVEL] [--log-format json|text|classic]
      Run the node agent (DaemonSet): policy from the operator, BlockedHosts enforced in the
      node firewall, detections reported. NODE_NAME and POD_NAMESPACE are the defaults.
      --instance names its firewall table and sets (the chart passes the release name).
      A policy that runs a program (response.command, route.command, unblockCommand) not in
      --allowed-commands, or writes a hosts.deny file (response.hostsDeny.path) not in
      --allowed-hosts-deny, is refused: by default none is allowed. The nameservers of the
      --node-resolv-conf files (default /etc/resolv.conf: in the agent's pod, with dnsPolicy
      Default, the kubelet's copy of the node's) are never blocked; a file that is not there
      names none. Pod addresses are never blocked: the Nodes' podCIDRs, the running pods'
      addresses, and the --pod-cidr ranges (for a CNI that leaves Node.spec.podCIDR empty).
      Packets that come in by an interface other than the node's uplinks (its default
      routes' interfaces and those holding its Node addresses) with a source that routes out
      by an uplink are dropped (nftables only): a pod cannot send forged outside addresses
      through the node; --no-anti-spoofing turns that off.
`,
  operator: `  kube-portsentry operator --namespace NS --identity NAME [--listen-address 0.0.0.0:8443]
                        [--tls-cert FILE --tls-key FILE] [--agent-service-account NAME]
                        [--token-audience AUD] [--lease-name NAME] [--lease-duration 15s]
                        [--network-policy-namespaces NS[,NS...]] [--calico] [--cilium]
                        [--service-cidr CIDR[,...]] [--pod-cidr CIDR[,...]] [--allow-unbound-tokens]
                        [--allowed-commands PATH[,PATH...]] [--allowed-hosts-deny PATH[,PATH...]]
                        [--kubeconfig FILE] [--metrics-address HOST:PORT] [--log-level LEVEL]
                        [--log-format json|text|classic]
      Run the operator (Deployment, leader-elected). POD_NAMESPACE and POD_NAME are the defaults.
      Report tokens must be bound to a pod (which names its node); --allow-unbound-tokens
      also accepts tokens bound to none, which may report for any node (tests only).
`,
  convert: `  kube-portsentry convert portsentry.conf [-tcp|-stcp|-atcp] [-udp|-sudp|-audp] [--defaults FILE]
      Print the YAML policy equivalent to a classic PortSentry configuration.
`,
  validate: `  kube-portsentry validate FILE.yaml
      Check a policy file and print every problem.
`,
  'default-policy': `  kube-portsentry default-policy
      Print the bundled default policy.
`,
  crds: `  kube-portsentry crds [--out DIR]
      Print the CustomResourceDefinitions (kubectl apply -f -), or write one file each.
`,
};

export const USAGE = `Usage:
${Object.values(COMMAND_USAGE).join('')}  kube-portsentry --version | --help | COMMAND --help
`;

export const usageOf = (command: string): string => `Usage:\n${COMMAND_USAGE[command] ?? ''}`;

/** True when the arguments ask for help (anywhere: `block 1.2.3.4 --help` too). */
export const wantsHelp = (args: readonly string[]): boolean => args.includes('--help') || args.includes('-h');

export class UsageError extends Error {
  override name = 'UsageError';
}
