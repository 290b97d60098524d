// Expiry: detected BlockedHosts whose time is up are deleted (every node's set entry times
// out by itself), and what the correlator and the policy statuses remember is aged.
import type { ReportJudge } from '../cluster/report-judge.js';
import { custom, ignoreStatus, PLURALS } from '../k8s/client.js';
import type { OperatorContext } from './context.js';
import type { PolicyLoop } from './policy-loop.js';

export class ExpiryLoop {
  constructor(
    private readonly ctx: OperatorContext,
    private readonly policies: PolicyLoop,
    private readonly judge: ReportJudge,
    private readonly onDetectionChange: () => void,
  ) {}

  tick(now: number): void {
    const { ctx } = this;
    for (const [, { bh, target, source, expiresAt }] of ctx.index.entries()) {
      if (source !== 'detected' || !(expiresAt <= now) || bh.metadata.deletionTimestamp) continue;
      const address = target?.text ?? bh.spec.address;
      if (ctx.inFlight.has(address)) continue;
      ctx.runFor(address, async () => {
        await ctx.kube.custom.deleteClusterCustomObject({ ...custom(PLURALS.blockedHosts), name: bh.metadata.name }).catch(ignoreStatus(404));
        this.judge.forget(address);
        ctx.log.info({ source: address, blockedHost: bh.metadata.name }, 'block expired: BlockedHost deleted');
      });
    }
    this.judge.expire(now, this.policies.longestWindowMs());
    if (this.policies.expireDetectionOff(now)) this.onDetectionChange();
  }
}
