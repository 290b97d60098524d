// The shapes of our custom resources as the API returns them, and the names we give the
// objects we create.
import { createHash } from 'node:crypto';
import type { BlockEntry } from '../cluster/blocked-host-index.js';
import { addressOrNetworkOf } from '../net/address.js';
import { canonicalAddress } from '../net/ip.js';
import type { PolicySpec } from '../policy/types.js';

export interface Meta {
  name: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string | Date;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  deletionTimestamp?: string | Date;
}

export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration?: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface PolicyObject {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  /** As stored: the API server filled defaults, but the runtime validator still checks it. */
  spec: unknown;
  status?: { observedGeneration?: number; matchedNodes?: number; conditions?: Condition[] };
}

export interface BlockedHostSpec {
  address: string;
  reason?: string;
  policy?: string;
  source: 'detected' | 'manual';
  expiresAt?: string;
}

export interface BlockedHostStatus {
  firstSeen?: string;
  lastSeen?: string;
  probes?: number;
  ports?: string[];
  scanTypes?: string[];
  reportingNodes?: string[];
  conditions?: Condition[];
}

export interface BlockedHostObject {
  apiVersion?: string;
  kind?: string;
  metadata: Meta;
  spec: BlockedHostSpec;
  status?: BlockedHostStatus;
}

/**
 * What the agent keeps of a BlockedHost: its name, version and the spec fields blockEntryOf
 * reads. Its status (ports, nodes), labels and managedFields are most of the object, and an
 * agent holds every BlockedHost in force.
 */
export function leanBlockedHost<T extends BlockedHostObject>(bh: T): T {
  const { address, source, expiresAt } = bh.spec ?? {};
  const resourceVersion = bh.metadata.resourceVersion;
  return {
    metadata: { name: bh.metadata.name, ...(resourceVersion === undefined ? {} : { resourceVersion }) },
    spec: { address, source, ...(expiresAt === undefined ? {} : { expiresAt }) },
  } as T;
}

/**
 * An object without its metadata.managedFields (server-side apply's bookkeeping, which nothing
 * here reads): a third or more of a BlockedHost, and the operator holds every one.
 */
export function withoutManagedFields<T extends { metadata?: object }>(obj: T): T {
  const meta = obj.metadata as { managedFields?: unknown } | undefined;
  if (!meta?.managedFields) return obj;
  const { managedFields: _dropped, ...metadata } = meta;
  return { ...obj, metadata };
}

/** What a BlockedHost's spec asks for, read once (the spec may come from anyone: all optional). */
export function blockEntryOf(spec: Partial<BlockedHostSpec> | undefined): BlockEntry {
  return {
    target: addressOrNetworkOf(spec?.address ?? ''),
    source: spec?.source === 'detected' ? 'detected' : 'manual',
    expiresAt: spec?.expiresAt ? Date.parse(spec.expiresAt) : Infinity,
  };
}

/** What the operator publishes for one node: the policy in force there. */
export interface EffectivePolicy {
  policy: string;
  generation: number;
  spec: PolicySpec;
}

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'kube-portsentry';

/** Object names are DNS subdomains; long or odd inputs keep a readable prefix and a hash. */
function dnsName(prefix: string, text: string): string {
  const cleaned = text.toLowerCase().replace(/[^a-z0-9.-]/g, '-');
  const name = `${prefix}${cleaned}`.replace(/-+$/, '');
  if (name.length <= 63 && /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(name) && name === `${prefix}${cleaned}`) return name;
  const hash = createHash('sha256').update(text).digest('hex').slice(0, 10);
  return `${name.slice(0, 40).replace(/[.-]+$/, '')}-${hash}`;
}

const NODE_POLICY_PREFIX = 'kube-portsentry-node-';

/** The ConfigMap that carries a node's effective policy. */
export function nodePolicyConfigMapName(node: string): string {
  return dnsName(NODE_POLICY_PREFIX, node);
}

/** A name the operator owns in its namespace: a node's policy ConfigMap, whoever made it. */
export function isNodePolicyConfigMapName(name: string): boolean {
  return name.startsWith(NODE_POLICY_PREFIX);
}

/** The BlockedHost the operator makes for an address: v4-198-51-100-7, v6-2001-db8--1-128. */
export function blockedHostName(address: string): string {
  const text = canonicalAddress(address);
  if (!text) throw new Error(`${JSON.stringify(address)} is not an address`);
  return dnsName(`v${text.includes(':') ? 6 : 4}-`, text.replace(/[.:/]/g, '-'));
}

export function condition(
  type: string,
  status: Condition['status'],
  reason: string,
  message: string,
  generation: number | undefined,
  previous: Condition[] | undefined,
  now = new Date(),
): Condition {
  const before = previous?.find((c) => c.type === type);
  const lastTransitionTime = before && before.status === status ? before.lastTransitionTime : now.toISOString();
  return { type, status, reason, message, lastTransitionTime, ...(generation !== undefined ? { observedGeneration: generation } : {}) };
}
