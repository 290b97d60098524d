// Operator metrics. Labels are bounded sets (kind, result, source): never an address.
import { MetricSet } from './metric-set.js';

export class OperatorMetrics extends MetricSet {
  readonly leader = this.gauge('portsentry_leader', '1 while this operator replica holds the leader Lease.');
  readonly reportsReceived = this.counter('portsentry_reports_received_total', 'Agent report requests, by result (ok, unauthenticated, forbidden, invalid, not-leader, throttled: token reviews over their budget, unavailable, error).', ['result']);
  readonly reconciles = this.counter('portsentry_reconcile_total', 'Reconcile passes, by kind (policy, blockedhost, output) and result (ok, error).', ['kind', 'result']);
  readonly reconcileDuration = this.histogram('portsentry_reconcile_duration_seconds', 'How long a reconcile pass took, by kind.', [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30], ['kind']);
  readonly blockedHosts = this.gauge('portsentry_blockedhosts', 'BlockedHost objects, by source (detected, manual).', ['source']);
  readonly apiRequests = this.counter('portsentry_operator_api_requests_total', 'Requests this replica made to the Kubernetes API, by verb (as in audit logs), resource and HTTP code ("error" when no answer came).', ['verb', 'resource', 'code']);
  readonly scans = this.counter('portsentry_cluster_scans_detected_total', 'Sources that passed a cluster-wide trigger, by protocol.', ['protocol']);

  readonly uncorroborated = this.counter('portsentry_cluster_blocks_uncorroborated_total', 'Unverified detections kept to the node that saw them (no second node, no handshake, no opt-in), by policy.', ['policy']);

  readonly blocksRateLimited = this.counter('portsentry_cluster_blocks_rate_limited_total', 'Cluster-wide blocks refused because the policy\'s maxBlocksPerMinute was reached, by policy.', ['policy']);

  constructor(processMetrics = true) {
    super(processMetrics);
    // As in the agent's metrics: at 0 from the start, so increase() sees the first one.
    for (const protocol of ['tcp', 'udp']) this.scans.inc({ protocol }, 0);
  }
}
