// Kubernetes Events for what a cluster admin looks for with `kubectl describe`: scans and
// blocks on the BlockedHost. Cluster-scoped objects' events live in the default namespace.
// Failures are logged, never fatal.
import type { Logger } from '../log/logger.js';
import { describeError, type Kube } from '../k8s/client.js';

export interface EventTarget {
  apiVersion: string;
  kind: string;
  name: string;
  uid?: string;
}

export class EventRecorder {
  constructor(
    private readonly kube: Kube,
    private readonly component: string,
    private readonly instance: string,
    private readonly logger: Logger,
  ) {}

  /** `count`: how many occurrences the one Event stands for. */
  record(target: EventTarget, type: 'Normal' | 'Warning', reason: string, message: string, count = 1): void {
    const now = new Date();
    void this.kube.core
      .createNamespacedEvent({
        namespace: 'default',
        body: {
          metadata: { generateName: `${target.name.slice(0, 200)}.` },
          involvedObject: { apiVersion: target.apiVersion, kind: target.kind, name: target.name, ...(target.uid ? { uid: target.uid } : {}) },
          type,
          reason,
          message: message.slice(0, 1024),
          source: { component: this.component },
          reportingComponent: this.component,
          reportingInstance: this.instance,
          firstTimestamp: now,
          lastTimestamp: now,
          count,
        },
      })
      .catch((err: unknown) => this.logger.warn({ err: describeError(err), reason }, 'could not record event'));
  }
}
