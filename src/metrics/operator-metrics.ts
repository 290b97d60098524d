// Operator metrics. Labels are bounded sets (kind, result, source): never an address.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class OperatorMetrics {
  readonly registry = new Registry();

  readonly leader = new Gauge({
    name: 'portsentry_leader',
    help: '1 while this operator replica holds the leader Lease.',
    registers: [this.registry],
  });
  readonly reportsReceived = new Counter({
    name: 'portsentry_reports_received_total',
    help: 'Agent report requests, by result (ok, unauthenticated, forbidden, invalid, not-leader, throttled: token reviews over their budget, unavailable, error).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly reconciles = new Counter({
    name: 'portsentry_reconcile_total',
    help: 'Reconcile passes, by kind (policy, blockedhost, output) and result (ok, error).',
    labelNames: ['kind', 'result'] as const,
    registers: [this.registry],
  });
  readonly reconcileDuration = new Histogram({
    name: 'portsentry_reconcile_duration_seconds',
    help: 'How long a reconcile pass took, by kind.',
    labelNames: ['kind'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30],
    registers: [this.registry],
  });
  readonly blockedHosts = new Gauge({
    name: 'portsentry_blockedhosts',
    help: 'BlockedHost objects, by source (detected, manual).',
    labelNames: ['source'] as const,
    registers: [this.registry],
  });
  readonly apiRequests = new Counter({
    name: 'portsentry_operator_api_requests_total',
    help: 'Requests this replica made to the Kubernetes API, by verb (as in audit logs), resource and HTTP code ("error" when no answer came).',
    labelNames: ['verb', 'resource', 'code'] as const,
    registers: [this.registry],
  });
  readonly scans = new Counter({
    name: 'portsentry_cluster_scans_detected_total',
    help: 'Sources that passed a cluster-wide trigger, by protocol.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });

  readonly uncorroborated = new Counter({
    name: 'portsentry_cluster_blocks_uncorroborated_total',
    help: 'Unverified detections kept to the node that saw them (no second node, no handshake, no opt-in), by policy.',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });

  readonly blocksRateLimited = new Counter({
    name: 'portsentry_cluster_blocks_rate_limited_total',
    help: 'Cluster-wide blocks refused because the policy\'s maxBlocksPerMinute was reached, by policy.',
    labelNames: ['policy'] as const,
    registers: [this.registry],
  });

  constructor(processMetrics = true) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
    // As in the agent's metrics: at 0 from the start, so increase() sees the first one.
    for (const protocol of ['tcp', 'udp']) this.scans.inc({ protocol }, 0);
  }
}
