// Schemas of the cluster-only parts of the API: the PortSentryPolicy status and the
// BlockedHost resource. The policy spec itself lives in policy/spec-schema.ts.
import { parseCidr } from '../net/ip.js';
import type { Schema } from '../policy/schema.js';

export const GROUP = 'kube-portsentry.io';
export const VERSION = 'v1alpha1';

const text = (description: string, maxLength = 1024): Schema => ({ type: 'string', description, maxLength });

/** metav1.Condition, as the API conventions define it. */
export const conditionsSchema: Schema = {
  type: 'array',
  description: 'Current state, one condition per type (Ready).',
  maxItems: 16,
  mapKeys: ['type'],
  items: {
    type: 'object',
    description: 'One aspect of the current state.',
    required: ['type', 'status', 'lastTransitionTime', 'reason', 'message'],
    properties: {
      type: text('Condition type, e.g. Ready.', 316),
      status: { type: 'string', description: 'True, False or Unknown.', enum: ['True', 'False', 'Unknown'] },
      observedGeneration: { type: 'integer', description: 'The generation this condition was set for.', minimum: 0 },
      lastTransitionTime: { type: 'string', description: 'When the status last changed.', format: 'date-time' },
      reason: text('One CamelCase word for the status.', 1024),
      message: text('What a person should know.', 32768),
    },
  },
};

export const policyStatusSchema: Schema = {
  type: 'object',
  description: 'What the operator observed of this policy.',
  properties: {
    observedGeneration: { type: 'integer', description: 'The generation last reconciled.', minimum: 0 },
    matchedNodes: { type: 'integer', description: 'Nodes this policy applies to.', minimum: 0 },
    conditions: conditionsSchema,
  },
};

const nodeList = (description: string): Schema => ({
  type: 'array',
  description,
  maxItems: 5000,
  items: text('A node name.', 253),
});

export const blockedHostSpecSchema: Schema = {
  type: 'object',
  description: 'A cluster-wide block of one address or CIDR.',
  required: ['address'],
  properties: {
    address: {
      type: 'string',
      description: 'The blocked IP address or CIDR (IPv4 or IPv6).',
      maxLength: 64,
      check: (v) => (parseCidr(String(v)) ? null : `${JSON.stringify(v)} is not an IP address or CIDR`),
      cel: [
        { rule: 'isIP(self) || isCIDR(self)', message: 'must be an IP address or a CIDR' },
        { rule: 'self == oldSelf', message: 'address is immutable: delete and create another BlockedHost' },
      ],
    },
    reason: text('Why: the scan that triggered it, or the operator\'s words.', 1024),
    policy: text('The PortSentryPolicy that decided it (detected blocks).', 253),
    source: {
      type: 'string',
      description: 'detected (made by the operator, which expires it) or manual (kept until deleted).',
      enum: ['detected', 'manual'],
      default: 'manual',
    },
    expiresAt: {
      type: 'string',
      description: 'When the block is lifted; absent means never (manual blocks).',
      format: 'date-time',
    },
  },
};

export const blockedHostStatusSchema: Schema = {
  type: 'object',
  description: 'What the cluster saw of this source and where the block is enforced.',
  properties: {
    firstSeen: { type: 'string', description: 'First probe seen.', format: 'date-time' },
    lastSeen: { type: 'string', description: 'Latest probe seen.', format: 'date-time' },
    probes: { type: 'integer', description: 'Probes counted across the cluster.', minimum: 0 },
    ports: {
      type: 'array',
      description: 'Probed ports as protocol/port, e.g. tcp/79.',
      maxItems: 1024,
      items: text('protocol/port', 16),
    },
    scanTypes: {
      type: 'array',
      description: 'Probe types seen (connect, syn, fin, null, xmas, oddball, udp).',
      maxItems: 16,
      items: text('A probe type.', 16),
    },
    reportingNodes: nodeList('Nodes that saw probes from this source.'),
    enforcingNodes: nodeList('Nodes whose firewall set holds the block.'),
    conditions: conditionsSchema,
  },
};
