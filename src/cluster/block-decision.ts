// Whether a source reported by the agents becomes a cluster-wide block. Pure: evidence and
// the policy's response in, a decision out. A detection no handshake proves (stealth,
// advanced, UDP) can be forged by anyone who can send a node one packet, so by default
// (clusterEvidence: verified) a source is blocked on every node once any node saw it
// complete a TCP handshake: a connect scan of one node blocks the scanner everywhere. The
// handshake is as true as the agent that reports it (a node's root can claim one; the block
// budget and the protected addresses bound what that buys). A policy may accept more,
// knowingly: two or more nodes' reports of any kind (corroborated), or one node's (singleNode).
import type { Action, ClusterEvidence as EvidenceLevel } from '../policy/types.js';

/** Nodes whose unverified reports make a block everywhere under clusterEvidence: corroborated. */
export const CORROBORATING_NODES = 2;

export interface ClusterEvidence {
  /** The cluster-wide trigger is passed. */
  triggered: boolean;
  /** An agent's own trigger already blocked it on its node. */
  blockedLocally: boolean;
  /** Distinct nodes that reported a probe from it completing a handshake. */
  verifiedNodes: number;
  /** Distinct nodes that reported it within the trigger window. */
  nodes: number;
}

export interface ClusterResponse {
  /** The policy's action for the source's protocol. */
  action: Action;
  verifiedOnly: boolean;
  evidence: EvidenceLevel;
}

export type ClusterDecision =
  /** Nothing to do yet: no trigger passed anywhere. */
  | { kind: 'none' }
  | { kind: 'alert'; reason: 'policy' | 'unverified' }
  /** Not enough evidence for every node: it stays with the node(s) whose own trigger blocked it. */
  | { kind: 'node-only' }
  | { kind: 'block'; basis: 'verified' | 'corroborated' | 'one node' };

export function decideClusterBlock(e: ClusterEvidence, r: ClusterResponse): ClusterDecision {
  if (!e.triggered && !e.blockedLocally) return { kind: 'none' };
  if (r.action !== 'block') return { kind: 'alert', reason: 'policy' };
  if (r.verifiedOnly && e.verifiedNodes === 0) return { kind: 'alert', reason: 'unverified' };
  if (e.verifiedNodes >= 1) return { kind: 'block', basis: 'verified' };
  if (r.evidence === 'corroborated' && e.nodes >= CORROBORATING_NODES) return { kind: 'block', basis: 'corroborated' };
  if (r.evidence === 'singleNode') return { kind: 'block', basis: 'one node' };
  return { kind: 'node-only' };
}
