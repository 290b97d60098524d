// Prometheus metrics. Labels are bounded sets (protocol, mode, type, action): never an
// address, so a scan cannot grow the series count.
import { MetricSet } from './metric-set.js';

export class Metrics extends MetricSet {
  readonly probes = this.counter('portsentry_probes_total', 'Probes seen on watched ports, by protocol, detection mode and probe type.', ['protocol', 'mode', 'type'], () => this.publishProbes());
  readonly ignoredProbes = this.counter('portsentry_probes_ignored_total', 'Probes from ignored sources (ignore list or the host itself).', ['reason']);
  readonly spoofedProbes = this.counter('portsentry_probes_spoofed_total', 'Probes whose source would not route back out through the interface they came in on (forged: never counted or blocked), by protocol.', ['protocol']);
  /** Agent: reads the kernel's count of the anti-spoofing rule's drops (at each scrape). */
  readSpoofedDropped: (() => Promise<number>) | null = null;
  private spoofedDroppedSeen = 0;
  readonly spoofedDropped = this.counter('portsentry_spoofed_packets_dropped_total', 'Agent: packets a workload on this node sent with a source address that routes out by an uplink (an outside or another node\'s address), dropped by the anti-spoofing rule before anything saw them.', [], () => this.publishSpoofedDropped());
  readonly scans = this.counter('portsentry_scans_detected_total', 'Sources that passed the scan trigger, by protocol of the triggering probe.', ['protocol']);
  readonly alerts = this.counter('portsentry_alerts_total', 'Scans answered with an alert only, by reason (policy, unverified, rate-limited).', ['reason']);
  readonly blocks = this.counter('portsentry_blocks_total', 'Responses started (block or command), by scope.', ['scope', 'action']);
  readonly unblocks = this.counter('portsentry_unblocks_total', 'Responses lifted, by reason (expired, shutdown, admin: an unblock command, cluster: its BlockedHost deleted).', ['reason']);
  readonly actionErrors = this.counter('portsentry_action_errors_total', 'Response actions that failed, by action.', ['action']);
  readonly blockedHosts = this.gauge('portsentry_blocked_hosts', 'Sources currently blocked.');
  readonly trackedSources = this.gauge('portsentry_tracked_sources', 'Sources whose probes are being counted.');
  readonly evictedSources = this.counter('portsentry_tracked_sources_evicted_total', 'Tracked sources forgotten before their window ended because trigger.maxTrackedSources was reached (least recently seen first).');
  readonly packets = this.counter('portsentry_packets_inspected_total', 'Packets read from raw sockets (stealth and advanced modes), by protocol; replies and unwatched ports are filtered out in the kernel first.', ['protocol']);
  readonly malformedPackets = this.counter('portsentry_packets_dropped_total', 'Packets dropped by the parser or not addressed to this host, by reason.', ['protocol', 'reason']);
  readonly blockLatency = this.histogram('portsentry_block_latency_seconds', 'From reading the triggering probe to the response in place (firewall set entry added).', [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);
  readonly watchedPorts = this.gauge('portsentry_watched_ports', 'Ports watched, by protocol and mode.', ['protocol', 'mode']);

  // Agent only (cluster mode).
  readonly agentInfo = this.gauge('portsentry_agent_info', 'Always 1; labels say which node this agent guards.', ['node']);
  readonly reportQueue = this.gauge('portsentry_report_queue_sources', 'Sources with probes waiting to be reported to the operator.');
  readonly reportsDropped = this.counter('portsentry_reports_dropped_total', 'Source reports dropped because the queue was full (sources of one unverified probe first, oldest first).');
  readonly reportsSent = this.counter('portsentry_reports_sent_total', 'Report batches sent to the operator, by result (ok, retry, rejected).', ['result']);
  readonly blocklistEntries = this.gauge('portsentry_blocklist_entries', 'Addresses in the node firewall set, by family.', ['family']);
  readonly blocklistCapacity = this.gauge('portsentry_blocklist_capacity', 'Most addresses the node firewall set is meant to hold, by family.', ['family']);
  readonly protectedRefused = this.counter('portsentry_protected_refused_total', 'Blocks refused because the address is protected (node, pod or service CIDR, API server, gateway, DNS).');

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
    super(processMetrics);
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
