// Which policy applies to which node. Several policies may select a node: the one with the
// highest spec.priority wins, then the oldest (creationTimestamp), then the first by name.
// Policies that fail validation never apply.
import type { NodeSelector } from '../policy/types.js';

export interface NodeLabels {
  name: string;
  labels: Record<string, string>;
}

export interface Candidate {
  name: string;
  priority: number;
  created: number;
  selector: NodeSelector;
}

export function matchesSelector(labels: Record<string, string>, selector: NodeSelector): boolean {
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const value = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !e.values?.includes(value!)) return false;
        break;
      case 'NotIn':
        if (has && e.values?.includes(value!)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
    }
  }
  return true;
}

function wins(a: Candidate, b: Candidate): boolean {
  if (a.priority !== b.priority) return a.priority > b.priority;
  if (a.created !== b.created) return a.created < b.created;
  return a.name < b.name;
}

/** Node name to the winning policy's name (nodes no policy selects are absent). */
export function resolveNodePolicies(candidates: readonly Candidate[], nodes: readonly NodeLabels[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const node of nodes) {
    let best: Candidate | undefined;
    for (const c of candidates) if (matchesSelector(node.labels, c.selector) && (!best || wins(c, best))) best = c;
    if (best) out.set(node.name, best.name);
  }
  return out;
}
