// A registry and the metrics registered in it: counters, gauges and histograms made with
// their name, help and label names only, so each metric reads as one line of what it is.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class MetricSet {
  readonly registry = new Registry();

  constructor(processMetrics: boolean) {
    if (processMetrics) collectDefaultMetrics({ register: this.registry });
  }

  protected counter<L extends string = never>(name: string, help: string, labelNames: readonly L[] = [], collect?: () => void | Promise<void>): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry], ...(collect ? { collect } : {}) });
  }

  protected gauge<L extends string = never>(name: string, help: string, labelNames: readonly L[] = []): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }

  protected histogram<L extends string = never>(name: string, help: string, buckets: number[], labelNames: readonly L[] = []): Histogram<L> {
    return new Histogram({ name, help, buckets, labelNames, registers: [this.registry] });
  }
}
