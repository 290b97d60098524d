// The PortSentryPolicy schema: field types, defaults (the classic PortSentry defaults, with
// Debian's port lists) and per-field checks. The runtime validator and the CRD both come
// from here.
import { parseCidr } from '../net/ip.js';
import { parseDuration } from './duration.js';
import { parsePortSpec } from './ports.js';
import type { CelRule, Schema } from './schema.js';

export const API_VERSION = 'kube-portsentry.io/v1alpha1';
export const KIND = 'PortSentryPolicy';

export const DEBIAN_TCP_PORTS = [
  1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, 5742, 6667, 12345, 12346, 20034, 27665, 31337, 32771,
  32772, 32773, 32774, 40421, 49724, 54320,
];
export const DEBIAN_UDP_PORTS = [
  1, 7, 9, 69, 161, 162, 513, 635, 640, 641, 700, 37444, 34555, 31335, 32770, 32771, 32772, 32773, 32774, 31337,
  54321,
];

/** Substitution variables a command may use; anything else in `$...$` is a mistake. */
export const COMMAND_VARIABLES = ['$TARGET$', '$PORT$', '$MODE$'] as const;

const DAY = 86_400_000;

const DURATION_PATTERN = '^([0-9]+(ms|s|m|h))+$';

function durationCel(min: string, max: string, what: string): CelRule[] {
  return [
    { rule: `self.matches('${DURATION_PATTERN}')`, message: 'must be a duration like "90s", "10m" or "1h30m"' },
    {
      rule: `!self.matches('${DURATION_PATTERN}') || (duration(self) >= duration('${min}') && duration(self) <= duration('${max}'))`,
      message: `${what} must be between ${min} and ${max}`,
    },
  ];
}

function durationCheck(minMs: number, maxMs: number, what: string) {
  return (v: unknown): string | null => {
    const ms = parseDuration(String(v));
    if (ms === null) return `${JSON.stringify(v)} is not a duration like "90s", "10m" or "1h30m"`;
    if (ms < minMs || ms > maxMs) return `${what} must be between ${minMs / 1000}s and ${maxMs / 3_600_000}h`;
    return null;
  };
}

const portItem: Schema = {
  type: 'int-or-string',
  description: 'A port (1-65535) or an inclusive range "from-to".',
  maxLength: 11,
  check: (v) => {
    const r = parsePortSpec(v as number | string);
    return typeof r === 'string' ? r : null;
  },
  cel: [
    {
      rule:
        "type(self) == int ? (self >= 1 && self <= 65535) : (self.matches('^[0-9]{1,5}(-[0-9]{1,5})?$') && " +
        "self.split('-').all(x, int(x) >= 1 && int(x) <= 65535) && " +
        "(self.split('-').size() == 1 || int(self.split('-')[0]) <= int(self.split('-')[1])))",
      message: 'must be a port (1-65535) or a range "from-to" with from <= to',
    },
  ],
};

function portList(description: string, defaults: number[]): Schema {
  return { type: 'array', description, items: portItem, maxItems: 1024, default: defaults };
}

function argItem(allowVariables: boolean): Schema {
  return {
    type: 'string',
    description: 'One argument; $TARGET$, $PORT$ and $MODE$ are replaced by validated values.',
    maxLength: 1024,
    check: (v) => {
      for (const m of String(v).matchAll(/\$[A-Za-z_]+\$/g)) {
        if (!allowVariables) return `${m[0]} cannot be used here`;
        if (!(COMMAND_VARIABLES as readonly string[]).includes(m[0]))
          return `unknown variable ${m[0]} (known: ${COMMAND_VARIABLES.join(' ')})`;
      }
      return null;
    },
    cel: [
      allowVariables
        ? {
            rule: `self.findAll('[$][A-Za-z_]+[$]').all(v, v in ${JSON.stringify(COMMAND_VARIABLES).replaceAll('"', "'")})`,
            message: `only ${COMMAND_VARIABLES.join(' ')} may be substituted`,
          }
        : { rule: "!self.matches('[$][A-Za-z_]+[$]')", message: 'no variable can be used here' },
    ],
  };
}

function argv(description: string): Schema {
  return {
    type: 'array',
    description,
    items: argItem(true),
    maxItems: 64,
    default: [],
    check: (v) => {
      const list = v as string[];
      if (list.length === 0) return null;
      if (!list[0]) return 'the program (first element) must not be empty';
      if (/\$[A-Za-z_]+\$/.test(list[0])) return 'the program (first element) cannot contain a variable';
      return null;
    },
    cel: [
      {
        rule: "self.size() == 0 || (self[0] != '' && !self[0].matches('[$][A-Za-z_]+[$]'))",
        message: 'the program (first element) must be a non-empty path without variables',
      },
    ],
  };
}

function protocolSchema(proto: 'tcp' | 'udp', ports: number[], exclude: number[]): Schema {
  return {
    type: 'object',
    description: `How ${proto.toUpperCase()} is watched.`,
    properties: {
      mode: {
        type: 'string',
        description: `bind (classic -${proto}), stealth (-s${proto}), advanced (-a${proto}) or off.`,
        enum: ['bind', 'stealth', 'advanced', 'off'],
        default: 'bind',
      },
      ports: portList('Tripwire ports for bind and stealth modes.', ports),
      advancedLimit: {
        type: 'integer',
        description: 'Advanced mode watches every port below this one that no service listens on.',
        minimum: 1,
        maximum: 65535,
        default: 1024,
      },
      exclude: portList('Ports advanced mode never reports.', exclude),
    },
  };
}

const actionSchema = (proto: string, def: string): Schema => ({
  type: 'string',
  description: `What a ${proto} scan triggers: alert (log only), block, or command (run the command only).`,
  enum: ['alert', 'block', 'command'],
  default: def,
});

const labelSelector: Schema = {
  type: 'object',
  description: 'Nodes this policy applies to (a label selector; empty: every node). Standalone runs ignore it.',
  properties: {
    matchLabels: {
      type: 'map',
      description: 'Labels a node must have, with these values.',
      values: { type: 'string', description: 'A label value.', maxLength: 63 },
    },
    matchExpressions: {
      type: 'array',
      description: 'Label requirements, all of which a node must meet.',
      maxItems: 32,
      default: [],
      items: {
        type: 'object',
        description: 'One requirement: key, operator, values.',
        required: ['key', 'operator'],
        cel: [
          {
            rule: "(self.operator in ['In', 'NotIn']) == (has(self.values) && self.values.size() > 0)",
            message: 'values must be given for In and NotIn, and only for them',
          },
        ],
        check: (v) => {
          const e = v as { operator?: string; values?: unknown[] };
          const needs = e.operator === 'In' || e.operator === 'NotIn';
          return needs === (Array.isArray(e.values) && e.values.length > 0)
            ? null
            : 'values must be given for In and NotIn, and only for them';
        },
        properties: {
          key: { type: 'string', description: 'The label key.', maxLength: 317 },
          operator: {
            type: 'string',
            description: 'In, NotIn, Exists or DoesNotExist.',
            enum: ['In', 'NotIn', 'Exists', 'DoesNotExist'],
          },
          values: {
            type: 'array',
            description: 'Label values for In and NotIn.',
            maxItems: 64,
            items: { type: 'string', description: 'A label value.', maxLength: 63 },
          },
        },
      },
    },
  },
};

export const specSchema: Schema = {
  type: 'object',
  description: 'What to watch and how to respond.',
  // The cross-field rule of validate.ts that spans trigger and response.
  cel: [
    {
      rule: '!(has(self.response) && has(self.response.kernelFastPath) && self.response.kernelFastPath) || !has(self.trigger) || !has(self.trigger.count) || self.trigger.count == 0',
      message: 'response.kernelFastPath needs trigger.count 0',
    },
  ],
  properties: {
    nodeSelector: labelSelector,
    priority: {
      type: 'integer',
      description:
        'When several policies select a node, the highest priority applies (then the oldest, then the first by name).',
      minimum: 0,
      maximum: 1_000_000,
      default: 0,
    },
    tcp: protocolSchema('tcp', DEBIAN_TCP_PORTS, [113, 139]),
    udp: protocolSchema('udp', DEBIAN_UDP_PORTS, [520, 138, 137, 67]),
    trigger: {
      type: 'object',
      description: 'When a source counts as a scanner.',
      properties: {
        count: {
          type: 'integer',
          description: 'A source is a scanner after more than this many distinct probes (0: the first probe).',
          minimum: 0,
          // A source keeps at most 256 distinct probes (engine/tracker.ts), so more could never trigger.
          maximum: 255,
          default: 0,
        },
        window: {
          type: 'string',
          description: 'Probes older than this are forgotten.',
          default: '1h',
          check: durationCheck(1000, 7 * DAY, 'window'),
          cel: durationCel('1s', '168h', 'window'),
        },
        maxTrackedSources: {
          type: 'integer',
          description: 'Sources tracked at once; the least recently seen is forgotten first.',
          minimum: 1,
          maximum: 10_000_000,
          default: 100_000,
        },
      },
    },
    ignore: {
      type: 'array',
      description: 'Addresses and CIDRs (IPv4 and IPv6) never counted or blocked.',
      maxItems: 10_000,
      default: ['0.0.0.0/32', '127.0.0.0/8', '::/128', '::1/128'],
      items: {
        type: 'string',
        description: 'An address or a CIDR.',
        maxLength: 64,
        check: (v) => (parseCidr(String(v)) ? null : `${JSON.stringify(v)} is not an IP address or CIDR`),
        cel: [{ rule: 'isIP(self) || isCIDR(self)', message: 'must be an IP address or a CIDR' }],
      },
    },
    response: {
      type: 'object',
      description: 'What a detected scan triggers.',
      // The cross-field rules of validate.ts, for the API server.
      cel: [
        {
          rule:
            "!((has(self.tcp) && self.tcp == 'command') || (has(self.udp) && self.udp == 'command')) || " +
            '(has(self.command) && self.command.size() > 0)',
          message: 'command is required when an action is "command"',
        },
        {
          rule: '!(has(self.runCommandFirst) && self.runCommandFirst) || (has(self.command) && self.command.size() > 0)',
          message: 'runCommandFirst needs command',
        },
        {
          rule:
            '!(has(self.kernelFastPath) && self.kernelFastPath) || ' +
            "(!(has(self.verifiedOnly) && self.verifiedOnly) && (!has(self.firewall) || self.firewall in ['auto', 'nftables']))",
          message: 'kernelFastPath needs verifiedOnly false and firewall nftables or auto',
        },
      ],
      properties: {
        tcp: actionSchema('TCP', 'block'),
        udp: actionSchema('UDP', 'alert'),
        scope: {
          type: 'string',
          description:
            'node: count and block on the detecting node only. cluster: also count the trigger across all nodes ' +
            '(distinct node and port pairs) and block everywhere through a BlockedHost. Standalone runs use node.',
          enum: ['node', 'cluster'],
          default: 'cluster',
        },
        duration: {
          type: 'string',
          description: 'How long a block lasts before it is lifted.',
          default: '1h',
          check: durationCheck(1000, 365 * DAY, 'duration'),
          cel: durationCel('1s', '8760h', 'duration'),
        },
        verifiedOnly: {
          type: 'boolean',
          description: 'Only sources proven by a completed TCP handshake may be blocked.',
          default: false,
        },
        clusterEvidence: {
          type: 'string',
          description:
            'Cluster only. What makes a detection a block on every node; anything less blocks on the nodes whose own trigger fired. ' +
            'verified: a completed TCP handshake seen by any node (no forged packet makes one; an agent\'s credential can claim one, ' +
            'within the block budget and never for a protected address). ' +
            'corroborated: that, or two or more nodes reporting the source within the trigger window, handshake or not: anyone who can send forged packets ' +
            'to two nodes (from the nodes\' network, or from upstream without source-address filtering) then blocks the forged address everywhere. ' +
            'singleNode: one node\'s report: one forged packet to one node, or one compromised agent, blocks an address everywhere.',
          enum: ['verified', 'corroborated', 'singleNode'],
          default: 'verified',
        },
        maxBlocksPerMinute: {
          type: 'integer',
          description:
            'New blocks allowed per minute; beyond it scans are alerted and counted, not blocked. Sources proven by a handshake have a budget of this size of their own; ' +
            'of the budget for the others, a source seen for the first time may spend only the upper half, the lower half is kept for sources that come back after a refusal.',
          minimum: 1,
          maximum: 100_000,
          default: 60,
        },
        firewall: {
          type: 'string',
          description: 'Node firewall backend: auto (nftables, else iptables+ipset), nftables, iptables, none.',
          enum: ['auto', 'nftables', 'iptables', 'none'],
          default: 'auto',
        },
        kernelFastPath: {
          type: 'boolean',
          description:
            'Stealth and advanced modes with action block: nftables rules drop a probe and block its source in the kernel at the first packet; the sentry learns of it afterwards. Needs trigger.count 0, verifiedOnly false, nftables.',
          default: false,
        },
        route: {
          type: 'object',
          description: 'Classic KILL_ROUTE: a route per blocked address.',
          properties: {
            enabled: { type: 'boolean', description: 'Add the route.', default: false },
            command: argv('Command that adds the route; empty: a built-in blackhole route, lifted on expiry.'),
          },
        },
        hostsDeny: {
          type: 'object',
          description: 'Classic KILL_HOSTS_DENY: a TCP wrappers line per blocked address.',
          properties: {
            enabled: { type: 'boolean', description: 'Write the line.', default: false },
            path: { type: 'string', description: 'The hosts.deny file.', default: '/etc/hosts.deny' },
            line: {
              type: 'string',
              description: 'The line; $TARGET$ and $PORT$ are substituted.',
              default: 'ALL: $TARGET$ : DENY',
              maxLength: 1024,
              check: (v) => {
                const s = String(v);
                if (!s.includes('$TARGET$')) return 'must contain $TARGET$';
                if (/[\r\n]/.test(s)) return 'must be a single line';
                return argItem(true).check!(s);
              },
              cel: [
                { rule: "self.contains('$TARGET$')", message: 'must contain $TARGET$' },
                { rule: "!self.contains('\\n') && !self.contains('\\r')", message: 'must be a single line' },
                ...argItem(true).cel!,
              ],
            },
          },
        },
        command: argv('Classic KILL_RUN_CMD as an argument vector, run without a shell.'),
        runCommandFirst: {
          type: 'boolean',
          description: 'Run the command before blocking (classic KILL_RUN_CMD_FIRST).',
          default: false,
        },
        unblockCommand: argv('Command run when a block is lifted.'),
        banner: {
          type: 'string',
          description: 'Text sent on a TCP tripwire connection before it is closed (classic PORT_BANNER).',
          default: '',
          maxLength: 1024,
        },
        resolveHosts: {
          type: 'boolean',
          description: 'Look up the source name for logs and history (classic RESOLVE_HOST); never for commands.',
          default: false,
        },
      },
    },
    files: {
      type: 'object',
      description: 'Classic history and blocked files (standalone); empty disables one.',
      properties: {
        history: {
          type: 'string',
          description: 'One line per block, kept across restarts.',
          default: '/var/lib/kube-portsentry/portsentry.history',
        },
        blocked: {
          type: 'string',
          description: 'The blocks of the current run, cleared at start.',
          default: '/var/lib/kube-portsentry/portsentry.blocked',
        },
      },
    },
  },
};

const metaValue: Schema = { type: 'string', description: 'A label or annotation value.' };

export const documentSchema: Schema = {
  type: 'object',
  description: 'A PortSentryPolicy document.',
  required: ['apiVersion', 'kind'],
  properties: {
    apiVersion: { type: 'string', description: 'API version.', enum: [API_VERSION] },
    kind: { type: 'string', description: 'Kind.', enum: [KIND] },
    metadata: {
      type: 'object',
      description: 'Object metadata.',
      properties: {
        name: { type: 'string', description: 'Policy name.', default: 'default', maxLength: 253 },
        labels: { type: 'map', description: 'Labels (kept for kubectl).', values: metaValue },
        annotations: { type: 'map', description: 'Annotations (kept for kubectl).', values: metaValue },
      },
    },
    spec: specSchema,
  },
};
