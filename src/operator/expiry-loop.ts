// Expiry: detected BlockedHosts whose time is up are deleted (every node's set entry times
// out by itself), and what the correlator and the policy statuses remember is aged. A few
// deletes at a time: thousands due at once (a sweep's blocks expiring together, an operator
// starting on them) must not crowd out the detections' writes or the lease's renewal.
import type { ReportJudge } from '../cluster/report-judge.js';
import { custom, ignoreStatus, PLURALS } from '../k8s/client.js';
import type { OperatorContext } from './context.js';
import type { PolicyLoop } from './policy-loop.js';

/** BlockedHost deletes in flight at most. */
const MAX_DELETES = 8;

export class ExpiryLoop {
  private deleting = 0;

  constructor(
    private readonly ctx: OperatorContext,
    private readonly policies: PolicyLoop,
    private readonly judge: ReportJudge,
    private readonly onDetectionChange: () => void,
    /** Whether this replica still leads: a delete that ends starts the next only then. */
    private readonly leading: () => boolean,
  ) {}

  tick(now: number): void {
    this.deleteDue(now);
    this.judge.expire(now, this.policies.longestWindowMs());
    if (this.policies.expireDetectionOff(now)) this.onDetectionChange();
  }

  /**
   * Deletes the detected BlockedHosts due by `now`, found through the expiry heap (this costs
   * what expired, not what is held), MAX_DELETES at a time; each that ends starts the next.
   */
  private deleteDue(now: number): void {
    const { ctx } = this;
    if (this.deleting >= MAX_DELETES) return;
    const later: { name: string; expiresAt: number }[] = [];
    for (const due of ctx.expiries.expired(now)) {
      const entry = ctx.index.get(due.name);
      // Gone, renewed, or made by hand since: nothing to do.
      if (!entry || entry.source !== 'detected' || !(entry.expiresAt <= now)) continue;
      const { bh, target } = entry;
      // Being deleted already; looked at again next tick.
      if (bh.metadata.deletionTimestamp) {
        later.push(due);
        continue;
      }
      const address = target?.text ?? bh.spec.address;
      if (ctx.inFlight.has(address)) {
        later.push(due);
        continue;
      }
      this.deleting++;
      ctx.runFor(address, async () => {
        try {
          await ctx.kube.custom.deleteClusterCustomObject({ ...custom(PLURALS.blockedHosts), name: bh.metadata.name }).catch(ignoreStatus(404));
        } catch (err) {
          ctx.expiries.push(due.name, due.expiresAt); // tried again next tick
          throw err;
        }
        this.judge.forget(address);
        ctx.log.info({ source: address, blockedHost: bh.metadata.name }, 'block expired: BlockedHost deleted');
      });
      void ctx.inFlight.get(address)!.finally(() => {
        this.deleting--;
        if (this.leading()) this.deleteDue(Date.now());
      });
      if (this.deleting >= MAX_DELETES) break;
    }
    for (const due of later) ctx.expiries.push(due.name, due.expiresAt);
  }
}
