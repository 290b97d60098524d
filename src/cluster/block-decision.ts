// Whether a source reported by the agents becomes a cluster-wide block. Pure: evidence and
// the policy's response in, a decision out. A detection that no handshake proves (stealth,
// advanced, UDP) is evidence about the node it hit, since anyone who can send that node one
// packet (a pod with NET_RAW, anyone on the path) can forge it: it becomes a block on every
// node only when corroborated (two or more nodes report the source within the window, or a
// probe from it completes a handshake), or when the policy opts in knowingly.
import type { Action } from '../policy/types.js';

/** Nodes that must report an unverified source before it is blocked everywhere. */
export const CORROBORATING_NODES = 2;

export interface ClusterEvidence {
  /** The cluster-wide trigger is passed. */
  triggered: boolean;
  /** An agent's own trigger already blocked it on its node. */
  blockedLocally: boolean;
  /** A probe from it completed a handshake. */
  verified: boolean;
  /** Distinct nodes that reported it within the trigger window. */
  nodes: number;
}

export interface ClusterResponse {
  /** The policy's action for the source's protocol. */
  action: Action;
  verifiedOnly: boolean;
  unverifiedClusterBlocks: boolean;
}

export type ClusterDecision =
  /** Nothing to do yet: no trigger passed anywhere. */
  | { kind: 'none' }
  | { kind: 'alert'; reason: 'policy' | 'unverified' }
  /** Unverified and uncorroborated: it stays with the node(s) whose own trigger blocked it. */
  | { kind: 'node-only' }
  | { kind: 'block'; basis: 'verified' | 'corroborated' | 'policy opts in' };

export function decideClusterBlock(e: ClusterEvidence, r: ClusterResponse): ClusterDecision {
  if (!e.triggered && !e.blockedLocally) return { kind: 'none' };
  if (r.action !== 'block') return { kind: 'alert', reason: 'policy' };
  if (r.verifiedOnly && !e.verified) return { kind: 'alert', reason: 'unverified' };
  if (e.verified) return { kind: 'block', basis: 'verified' };
  if (e.nodes >= CORROBORATING_NODES) return { kind: 'block', basis: 'corroborated' };
  if (r.unverifiedClusterBlocks) return { kind: 'block', basis: 'policy opts in' };
  return { kind: 'node-only' };
}
