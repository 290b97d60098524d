// Policies to nodes: which valid policy each node runs (one ConfigMap per node with its
// effective policy, drift put right), and each policy's status (Ready with the matched node
// count or its problems; Detecting from what the agents say of their detection).
import type { V1ConfigMap } from '@kubernetes/client-node';
import { resolveNodePolicies, type Candidate } from '../cluster/policy-selection.js';
import type { Report } from '../cluster/report.js';
import { custom, ignoreStatus, mergePatch, PLURALS } from '../k8s/client.js';
import {
  condition,
  isNodePolicyConfigMapName,
  LABEL_MANAGED_BY,
  MANAGED_BY,
  nodePolicyConfigMapName,
  type Condition,
  type EffectivePolicy,
} from '../k8s/objects.js';
import { compileSpec } from '../policy/compiled.js';
import { describeRefusals, refusalReason, refusalsOf } from '../policy/node-allowances.js';
import { formatProblems } from '../policy/validate.js';
import type { OperatorContext, ValidPolicy } from './context.js';

export const NODE_ANNOTATION = 'kube-portsentry.io/node';
/** Three of the agents' 30 s repeats of "detection off". */
const DETECTION_OFF_TTL_MS = 90_000;
/** The longest trigger window, when no policy is valid. */
const DEFAULT_WINDOW_MS = 3_600_000;

interface Resolution {
  valid: Map<string, ValidPolicy>;
  problems: Map<string, { reason: string; message: string }>;
  /** Node name to the name of the policy it runs. */
  mapping: Map<string, string>;
}

export class PolicyLoop {
  private valid = new Map<string, ValidPolicy>();
  /** Which policy each node runs, from the caches; dropped when policies or nodes change. */
  private assigned: Map<string, string> | undefined;
  /**
   * Nodes whose agent says its detection is off (its policy failed to start), for the
   * policy's Detecting condition. Agents repeat it every 30 s while off; older is forgotten.
   */
  private readonly detectionOff = new Map<string, { policy: string; why: string; at: number }>();

  constructor(private readonly ctx: OperatorContext) {}

  /** The caches changed: the node mapping is worked out again when next asked. */
  invalidate(): void {
    this.assigned = undefined;
  }

  /** The policy the operator gives `node` (its agent's reports are judged by it), if any. */
  policyOf(node: string): ValidPolicy | undefined {
    this.assigned ??= this.resolve().mapping;
    const name = this.assigned.get(node);
    return name === undefined ? undefined : this.policyNamed(name);
  }

  /** The longest trigger window of the valid policies: how long the correlator remembers. */
  longestWindowMs(): number {
    let longest = 0;
    for (const p of this.valid.values()) longest = Math.max(longest, p.policy.windowMs);
    return longest || DEFAULT_WINDOW_MS;
  }

  /**
   * The policy a report names, from the watch cache: a leader that has just taken over gets
   * reports before its first policy reconcile has filled `valid`, and must not drop them.
   */
  private policyNamed(name: string): ValidPolicy | undefined {
    const object = this.ctx.policies.get(name);
    if (!object) return undefined;
    const generation = object.metadata.generation ?? 0;
    const known = this.valid.get(name);
    if (known?.generation === generation) return known;
    const r = compileSpec(name, object.spec ?? {}, 'spec');
    return r.ok ? { name, generation, policy: r.value } : undefined;
  }

  /** The valid policies, the problems of the others, and which one each node runs. */
  private resolve(): Resolution {
    const { allowedCommands, allowedHostsDeny } = this.ctx.options;
    const candidates: Candidate[] = [];
    const valid = new Map<string, ValidPolicy>();
    const problems = new Map<string, { reason: string; message: string }>();
    for (const p of this.ctx.policies.list()) {
      const r = compileSpec(p.metadata.name, p.spec ?? {}, 'spec');
      if (!r.ok) {
        problems.set(p.metadata.name, { reason: 'InvalidSpec', message: formatProblems(r.problems) });
        continue;
      }
      const spec = r.value.spec;
      // The agents refuse it too; saying so here puts the reason on the policy's status.
      const refused = refusalsOf(spec, { commands: allowedCommands ?? [], hostsDenyFiles: allowedHostsDeny ?? [] });
      if (refused.length) {
        problems.set(p.metadata.name, { reason: refusalReason(refused), message: describeRefusals(refused) });
        continue;
      }
      valid.set(p.metadata.name, { name: p.metadata.name, generation: p.metadata.generation ?? 0, policy: r.value });
      candidates.push({
        name: p.metadata.name,
        priority: spec.priority,
        created: Date.parse(String(p.metadata.creationTimestamp ?? '')) || 0,
        selector: spec.nodeSelector,
      });
    }
    const nodes = this.ctx.facts.nodes.list().map((n) => ({ name: n.metadata?.name ?? '', labels: n.metadata?.labels ?? {} }));
    return { valid, problems, mapping: resolveNodePolicies(candidates, nodes) };
  }

  async reconcile(): Promise<void> {
    const { valid, problems, mapping } = this.resolve();
    this.valid = valid;
    this.assigned = mapping;
    await this.publish(valid, mapping);
    await this.writeStatuses(problems, mapping);
  }

  /**
   * One ConfigMap per node with its effective policy; none for nodes no policy selects. Any
   * difference from what we would write (data, label, annotation) is drift, put right.
   */
  private async publish(valid: Map<string, ValidPolicy>, mapping: Map<string, string>): Promise<void> {
    const { kube, log } = this.ctx;
    const namespace = this.ctx.options.namespace;
    const existing = new Map(
      this.ctx.configMaps
        .list()
        .filter((cm) => isNodePolicyConfigMapName(cm.metadata?.name ?? ''))
        .map((cm) => [cm.metadata!.name!, cm]),
    );
    const wanted = new Set<string>();
    for (const [node, policyName] of mapping) {
      const policy = valid.get(policyName)!;
      const name = nodePolicyConfigMapName(node);
      wanted.add(name);
      const effective: EffectivePolicy = { policy: policy.name, generation: policy.generation, spec: policy.policy.spec };
      const data = { 'policy.json': JSON.stringify(effective) };
      const current = existing.get(name);
      if (
        current &&
        JSON.stringify(current.data) === JSON.stringify(data) &&
        current.metadata?.labels?.[LABEL_MANAGED_BY] === MANAGED_BY &&
        current.metadata?.annotations?.[NODE_ANNOTATION] === node
      )
        continue;
      const body: V1ConfigMap = {
        metadata: {
          name,
          namespace,
          labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
          annotations: { [NODE_ANNOTATION]: node },
          ...(current ? { resourceVersion: current.metadata?.resourceVersion } : {}),
        },
        data,
      };
      // A 409 (someone wrote it meanwhile) fails the pass; the retry sees it and replaces it.
      if (current) await kube.core.replaceNamespacedConfigMap({ name, namespace, body });
      else await kube.core.createNamespacedConfigMap({ namespace, body });
      if (current?.data?.['policy.json'] === data['policy.json']) log.warn({ node, configMap: name }, 'node policy ConfigMap drifted; restored');
      else if (current && current.metadata?.labels?.[LABEL_MANAGED_BY] !== MANAGED_BY) log.warn({ node, configMap: name }, 'node policy ConfigMap written by someone else; replaced');
      log.info({ node, policy: policy.name, generation: policy.generation }, 'effective policy published');
    }
    for (const name of existing.keys()) if (!wanted.has(name)) await kube.core.deleteNamespacedConfigMap({ name, namespace }).catch(ignoreStatus(404));
  }

  /** Status: Ready with the matched node count, or the validation problems; Detecting. */
  private async writeStatuses(problems: Resolution['problems'], mapping: Map<string, string>): Promise<void> {
    const counts = new Map<string, number>();
    for (const policyName of mapping.values()) counts.set(policyName, (counts.get(policyName) ?? 0) + 1);
    for (const p of this.ctx.policies.list()) {
      const name = p.metadata.name;
      const generation = p.metadata.generation;
      const previous = p.status?.conditions;
      const problem = problems.get(name);
      const matched = counts.get(name) ?? 0;
      const ready = problem
        ? condition('Ready', 'False', problem.reason, problem.message, generation, previous)
        : matched > 0
          ? condition('Ready', 'True', 'Applied', `in force on ${matched} node(s)`, generation, previous)
          : condition('Ready', 'True', 'NoMatchingNodes', 'valid, but in force on no node (no node selected, or a higher priority policy wins)', generation, previous);
      const detecting = this.detecting(name, generation, previous);
      const status = { observedGeneration: generation, matchedNodes: matched, conditions: detecting ? [ready, detecting] : [ready] };
      const before = p.status;
      // The API server gives the conditions back with their keys sorted: compared as sets of fields.
      const same =
        before?.observedGeneration === status.observedGeneration &&
        before?.matchedNodes === status.matchedNodes &&
        sortedJson(before?.conditions) === sortedJson(status.conditions);
      if (same) continue;
      await this.ctx.kube.custom.patchClusterCustomObjectStatus({ ...custom(PLURALS.policies), name, body: { status } }, mergePatch).catch(ignoreStatus(404));
      if (problem) this.ctx.log.warn({ policy: name, reason: problem.reason, problems: problem.message }, 'policy rejected');
    }
  }

  /** The node's word on its detection, for the policy it runs (`assigned`) only; true when it changed. */
  noteDetection(report: Report, assigned: string | undefined, now: number): boolean {
    const before = this.detectionOff.get(report.node);
    if (report.detectionOff && report.policy !== null && report.policy === assigned) this.detectionOff.set(report.node, { policy: report.policy, why: report.detectionOff, at: now });
    else this.detectionOff.delete(report.node);
    // Only a change of what is kept is one: a report of a node whose detection is on changes nothing.
    const after = this.detectionOff.get(report.node);
    return before?.why !== after?.why || before?.policy !== after?.policy;
  }

  /** Forgets nodes that stopped saying their detection is off (an agent gone, or a lost leader's state); true when any was. */
  expireDetectionOff(now: number): boolean {
    let changed = false;
    for (const [node, d] of this.detectionOff)
      if (now - d.at > DETECTION_OFF_TTL_MS) {
        this.detectionOff.delete(node);
        changed = true;
      }
    return changed;
  }

  /** The Detecting condition: False naming the nodes whose policy failed to start; True once one was reported and none is. */
  private detecting(name: string, generation: number | undefined, previous: Condition[] | undefined): Condition | undefined {
    const off = [...this.detectionOff].filter(([, d]) => d.policy === name);
    if (off.length) {
      const listed = off.slice(0, 5).map(([node, d]) => `${node}: ${d.why}`);
      if (off.length > 5) listed.push(`and ${off.length - 5} more node(s)`);
      return condition('Detecting', 'False', 'StartFailed', listed.join('; ').slice(0, 4096), generation, previous);
    }
    if (previous?.some((c) => c.type === 'Detecting')) return condition('Detecting', 'True', 'Running', 'no node reports its detection off', generation, previous);
    return undefined;
  }
}

/** JSON with every object's keys in order, so two values that differ only in key order compare equal. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
