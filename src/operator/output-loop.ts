// BlockedHosts to the optional network-policy outputs (NetworkPolicy per namespace, Calico,
// Cilium): the addresses in force, protected ones left out, rendered by outputs.ts.
import { applyObject, ignoreStatus, objectPath, rawRequest } from '../k8s/client.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from '../k8s/objects.js';
import type { OperatorContext } from './context.js';
import { calicoObjectRefs, CILIUM_REF, OUTPUT_NAME, renderCalico, renderCilium, renderNetworkPolicy, type ObjectRef } from './outputs.js';

export class OutputLoop {
  /** The default-tier Calico policy of earlier versions is deleted once per run. */
  private legacyCalicoRemoved = false;

  constructor(private readonly ctx: OperatorContext) {}

  async reconcile(): Promise<void> {
    const { kube, options } = this.ctx;
    const { networkPolicyNamespaces, calico, cilium } = options;
    if (!networkPolicyNamespaces.length && !calico && !cilium) return;
    const now = Date.now();
    const guard = this.ctx.protectedSet();
    const addresses = [...this.ctx.index.addresses()].filter((a) => !guard.reason(a) && !(this.ctx.index.first(a)!.expiresAt <= now));
    const apply = (obj: Record<string, unknown>) => applyObject(kube, obj as unknown as Parameters<typeof applyObject>[1]);
    const remove = (ref: ObjectRef) => rawRequest(kube, 'DELETE', objectPath(ref)).catch(ignoreStatus(404));
    // Nothing blocked: no object at all, so no engine reads an empty list its own way.
    if (networkPolicyNamespaces.length) {
      const wanted = new Set<string>();
      for (const ns of networkPolicyNamespaces) {
        const np = renderNetworkPolicy(ns, addresses);
        if (np) {
          await apply(np);
          wanted.add(ns);
        }
      }
      const ours = await kube.networking.listNetworkPolicyForAllNamespaces({ labelSelector: `${LABEL_MANAGED_BY}=${MANAGED_BY}` });
      for (const np of ours.items)
        if (np.metadata?.name === OUTPUT_NAME && !wanted.has(np.metadata.namespace ?? ''))
          await kube.networking.deleteNamespacedNetworkPolicy({ name: OUTPUT_NAME, namespace: np.metadata.namespace! }).catch(ignoreStatus(404));
    }
    if (calico) {
      const objects = renderCalico(addresses);
      // The tier before what goes into it; deletions the other way round.
      for (const obj of objects) await apply(obj);
      if (!objects.length) for (const ref of calicoObjectRefs()) await remove(ref);
      else if (!this.legacyCalicoRemoved) await remove(calicoObjectRefs()[1]!);
      this.legacyCalicoRemoved = true;
    }
    if (cilium) {
      const policy = renderCilium(addresses);
      if (policy) await apply(policy);
      else await remove(CILIUM_REF);
    }
    this.ctx.log.debug({ addresses: addresses.length }, 'network policy outputs applied');
  }
}
