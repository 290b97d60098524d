// The CustomResourceDefinitions, generated from the same schemas the runtime validator
// uses (so the API server and `kube-portsentry validate` cannot drift), with the CEL rules
// those schemas carry for what a structural schema alone cannot say.
import type { Schema } from '../policy/schema.js';
import { specSchema } from '../policy/spec-schema.js';
import { GROUP, VERSION, blockedHostSpecSchema, blockedHostStatusSchema, policyStatusSchema } from './api-schemas.js';

type OpenApi = Record<string, unknown>;

/** OpenAPI v3 (structural) for one schema node; objects default to {} so nested defaults apply. */
export function toOpenApi(schema: Schema): OpenApi {
  const out: OpenApi = { description: schema.description };
  switch (schema.type) {
    case 'string':
      out.type = 'string';
      if (schema.enum) out.enum = [...schema.enum];
      if (schema.maxLength !== undefined) out.maxLength = schema.maxLength;
      if (schema.format) out.format = schema.format;
      if (schema.default !== undefined) out.default = schema.default;
      break;
    case 'integer':
      out.type = 'integer';
      if (schema.minimum !== undefined) out.minimum = schema.minimum;
      if (schema.maximum !== undefined) out.maximum = schema.maximum;
      if (schema.default !== undefined) out.default = schema.default;
      break;
    case 'boolean':
      out.type = 'boolean';
      if (schema.default !== undefined) out.default = schema.default;
      break;
    case 'int-or-string':
      out['x-kubernetes-int-or-string'] = true;
      if (schema.maxLength !== undefined) out.maxLength = schema.maxLength;
      if (schema.default !== undefined) out.default = schema.default;
      break;
    case 'array':
      out.type = 'array';
      out.items = toOpenApi(schema.items);
      if (schema.maxItems !== undefined) out.maxItems = schema.maxItems;
      if (schema.default !== undefined) out.default = schema.default;
      if (schema.mapKeys) {
        out['x-kubernetes-list-type'] = 'map';
        out['x-kubernetes-list-map-keys'] = [...schema.mapKeys];
      }
      break;
    case 'map':
      out.type = 'object';
      out.additionalProperties = toOpenApi(schema.values);
      break;
    case 'object': {
      out.type = 'object';
      const properties: Record<string, OpenApi> = {};
      for (const [key, sub] of Object.entries(schema.properties)) {
        properties[key] = toOpenApi(sub);
        if (sub.type === 'object' && !schema.required?.includes(key)) properties[key].default = {};
      }
      out.properties = properties;
      if (schema.required?.length) out.required = [...schema.required];
      break;
    }
  }
  if (schema.cel?.length) out['x-kubernetes-validations'] = schema.cel.map((c) => ({ rule: c.rule, message: c.message }));
  return out;
}

interface CrdOptions {
  kind: string;
  plural: string;
  shortName: string;
  spec: Schema;
  status: Schema;
  columns: { name: string; type: string; jsonPath: string; description: string; priority?: number }[];
  specRequired: boolean;
}

function crd(o: CrdOptions): OpenApi {
  const spec = toOpenApi(o.spec);
  if (!o.specRequired) spec.default = {};
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${o.plural}.${GROUP}`, labels: { 'app.kubernetes.io/name': 'kube-portsentry' } },
    spec: {
      group: GROUP,
      scope: 'Cluster',
      names: {
        kind: o.kind,
        listKind: `${o.kind}List`,
        plural: o.plural,
        singular: o.kind.toLowerCase(),
        shortNames: [o.shortName],
        categories: ['portsentry'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: o.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: o.spec.description,
              ...(o.specRequired ? { required: ['spec'] } : {}),
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
                metadata: { type: 'object' },
                spec,
                status: toOpenApi(o.status),
              },
            },
          },
        },
      ],
    },
  };
}

export function policyCrd(): OpenApi {
  return crd({
    kind: 'PortSentryPolicy',
    plural: 'portsentrypolicies',
    shortName: 'psp',
    spec: specSchema,
    status: policyStatusSchema,
    specRequired: false,
    columns: [
      { name: 'TCP', type: 'string', jsonPath: '.spec.tcp.mode', description: 'TCP detection mode.' },
      { name: 'UDP', type: 'string', jsonPath: '.spec.udp.mode', description: 'UDP detection mode.' },
      { name: 'Trigger', type: 'integer', jsonPath: '.spec.trigger.count', description: 'Distinct probes allowed before a response.' },
      { name: 'TCP-Action', type: 'string', jsonPath: '.spec.response.tcp', description: 'Response to TCP scans.' },
      { name: 'UDP-Action', type: 'string', jsonPath: '.spec.response.udp', description: 'Response to UDP scans.' },
      { name: 'Nodes', type: 'integer', jsonPath: '.status.matchedNodes', description: 'Nodes the policy applies to.' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status', description: 'Accepted and applied.' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age.' },
    ],
  });
}

export function blockedHostCrd(): OpenApi {
  return crd({
    kind: 'BlockedHost',
    plural: 'blockedhosts',
    shortName: 'bh',
    spec: blockedHostSpecSchema,
    status: blockedHostStatusSchema,
    specRequired: true,
    columns: [
      { name: 'Address', type: 'string', jsonPath: '.spec.address', description: 'Blocked address or CIDR.' },
      { name: 'Source', type: 'string', jsonPath: '.spec.source', description: 'detected or manual.' },
      { name: 'Reason', type: 'string', jsonPath: '.spec.reason', description: 'Why it is blocked.' },
      { name: 'Ports', type: 'string', jsonPath: '.status.ports', description: 'Probed ports.' },
      { name: 'Nodes', type: 'string', jsonPath: '.status.reportingNodes', description: 'Nodes that saw the scan.' },
      // A string, not a date: kubectl prints future dates as <invalid>.
      { name: 'Expires', type: 'string', jsonPath: '.spec.expiresAt', description: 'When the block is lifted.' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Age.' },
    ],
  });
}

export function allCrds(): OpenApi[] {
  return [policyCrd(), blockedHostCrd()];
}
