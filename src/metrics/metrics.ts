// Prometheus metrics. Labels are bounded sets (protocol, mode, type, action): never an
// address, so a scan cannot grow the series count.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();

  readonly probes: Counter<'protocol' | 'mode' | 'type'> = new Counter({
    name: 'portsentry_probes_total',
    help: 'Probes seen on watched ports, by protocol, detection mode and probe type.',
    labelNames: ['protocol', 'mode', 'type'] as const,
    registers: [this.registry],
    collect: () => this.publishProbes(),
  });
  readonly ignoredProbes = new Counter({
    name: 'portsentry_probes_ignored_total',
    help: 'Probes from ignored sources (ignore list or the host itself).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly spoofedProbes = new Counter({
    name: 'portsentry_probes_spoofed_total',
    help: 'Probes whose source would not route back out through the interface they came in on (forged: never counted or blocked), by protocol.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  /** Agent: reads the kernel's count of the anti-spoofing rule's drops (at each scrape). */
  readSpoofedDropped: (() => Promise<number>) | null = null;
  private spoofedDroppedSeen = 0;
  readonly spoofedDropped: Counter = new Counter({
    name: 'portsentry_spoofed_packets_dropped_total',
    help: 'Agent: packets a workload on this node sent with a source address that routes out by an uplink (an outside or another node\'s address), dropped by the anti-spoofing rule before anything saw them.',
    registers: [this.registry],
    collect: () => this.publishSpoofedDropped(),
  });
  readonly scans = new Counter({
    name: 'portsentry_scans_detected_total',
    help: 'Sources that passed the scan trigger, by protocol of the triggering probe.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly alerts = new Counter({
    name: 'portsentry_alerts_total',
    help: 'Scans answered with an alert only, by reason (policy, unverified, rate-limited).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly blocks = new Counter({
    name: 'portsentry_blocks_total',
    help: 'Responses started (block or command), by scope.',
    labelNames: ['scope', 'action'] as const,
    registers: [this.registry],
  });
  readonly unblocks = new Counter({
    name: 'portsentry_unblocks_total',
    help: 'Responses lifted, by reason (expired, shutdown, admin: an unblock command, cluster: its BlockedHost deleted).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly actionErrors = new Counter({
    name: 'portsentry_action_errors_total',
    help: 'Response actions that failed, by action.',
    labelNames: ['action'] as const,
    registers: [this.registry],
  });
  readonly blockedHosts = new Gauge({
    name: 'portsentry_blocked_hosts',
    help: 'Sources currently blocked.',
    registers: [this.registry],
  });
  readonly trackedSources = new Gauge({
    name: 'portsentry_tracked_sources',
    help: 'Sources whose probes are being counted.',
    registers: [this.registry],
  });
  readonly evictedSources = new Counter({
    name: 'portsentry_tracked_sources_evicted_total',
    help: 'Tracked sources forgotten before their window ended because trigger.maxTrackedSources was reached (least recently seen first).',
    registers: [this.registry],
  });
  readonly packets = new Counter({
    name: 'portsentry_packets_inspected_total',
    help: 'Packets read from raw sockets (stealth and advanced modes), by protocol; replies and unwatched ports are filtered out in the kernel first.',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  readonly malformedPackets = new Counter({
    name: 'portsentry_packets_dropped_total',
    help: 'Packets dropped by the parser or not addressed to this host, by reason.',
    labelNames: ['protocol', 'reason'] as const,
    registers: [this.registry],
  });
  readonly blockLatency = new Histogram({
    name: 'portsentry_block_latency_seconds',
    help: 'From reading the triggering probe to the response in place (firewall set entry added).',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly watchedPorts = new Gauge({
    name: 'portsentry_watched_ports',
    help: 'Ports watched, by protocol and mode.',
    labelNames: ['protocol', 'mode'] as const,
    registers: [this.registry],
  });

  // Agent only (cluster mode).
  readonly agentInfo = new Gauge({
    name: 'portsentry_agent_info',
    help: 'Always 1; labels say which node this agent guards.',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });
  readonly reportQueue = new Gauge({
    name: 'portsentry_report_queue_sources',
    help: 'Sources with probes waiting to be reported to the operator.',
    registers: [this.registry],
  });
  readonly reportsDropped = new Counter({
    name: 'portsentry_reports_dropped_total',
    help: 'Source reports dropped because the queue was full (sources of one unverified probe first, oldest first).',
    registers: [this.registry],
  });
  readonly reportsSent = new Counter({
    name: 'portsentry_reports_sent_total',
    help: 'Report batches sent to the operator, by result (ok, retry, rejected).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly blocklistEntries = new Gauge({
    name: 'portsentry_blocklist_entries',
    help: 'Addresses in the node firewall set, by family.',
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly blocklistCapacity = new Gauge({
    name: 'portsentry_blocklist_capacity',
    help: 'Most addresses the node firewall set is meant to hold, by family.',
    labelNames: ['family'] as const,
    registers: [this.registry],
  });
  readonly protectedRefused = new Counter({
    name: 'portsentry_protected_refused_total',
    help: 'Blocks refused because the address is protected (node, pod or service CIDR, API server, gateway, DNS).',
    registers: [this.registry],
  });

  /** Probe counts not yet published, by "protocol mode type". */
  private readonly pendingProbes = new Map<string, number>();

  /**
   * Counts one probe. prom-client hashes its labels on every inc(), which costs more than
   * the rest of the packet path, so probes are counted in a plain map and published when
   * Prometheus scrapes (the counter's collect hook).
   */
  countProbe(protocol: string, mode: string, type: string, count = 1): void {
    const key = `${protocol} ${mode} ${type}`;
    this.pendingProbes.set(key, (this.pendingProbes.get(key) ?? 0) + count);
  }

  private async publishSpoofedDropped(): Promise<void> {
    const now = await this.readSpoofedDropped?.().catch(() => null);
    if (now === null || now === undefined) return;
    // The kernel's counter starts again at 0 when the rule is set up again.
    this.spoofedDropped.inc(now >= this.spoofedDroppedSeen ? now - this.spoofedDroppedSeen : now);
    this.spoofedDroppedSeen = now;
  }

  private publishProbes(): void {
    for (const [key, count] of this.pendingProbes) {
      const [protocol, mode, type] = key.split(' ');
      this.probes.inc({ protocol, mode, type }, count);
    }
    this.pendingProbes.clear();
  }

  constructor(processMetrics = true) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
    // rate() and increase() cannot see a series' first increment unless it existed at 0
    // before: publish every label value the alerts watch from the start, so an alert fires
    // on the first scan, failure or refusal rather than from the second on.
    for (const protocol of ['tcp', 'udp']) this.scans.inc({ protocol }, 0);
    for (const reason of ['policy', 'unverified', 'rate-limited']) this.alerts.inc({ reason }, 0);
    for (const action of RESPONSE_ACTIONS) this.actionErrors.inc({ action }, 0);
  }
}

/** The actions whose failures portsentry_action_errors_total counts. */
export const RESPONSE_ACTIONS = [
  'firewall', 'route', 'hosts-deny', 'command', 'unblock-command', 'history', 'blocked-file', 'kernel-fast-path',
] as const;
