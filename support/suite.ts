// Shared setup for network suites: one pair of test hosts with a real service on the
// target, and at most one sentry at a time, stopped after each test even when it failed.
// The tests share the hosts, so each sentry removes what it owned when it stops
// (--flush-on-exit): the next test starts from a clean kernel.
import type { ChildProcess } from 'node:child_process';
import { after, afterEach, before, type TestContext } from 'node:test';
import { TestNet } from './netns.js';
import { prerequisites } from './prereq.js';
import { SentryProcess } from './sentry-process.js';

export interface HostsSuite {
  readonly net: TestNet;
  /** Skips the test (or fails it under CI) when root or a tool is missing. */
  ready(t: TestContext): boolean;
  start(policy: string | { args: string[] }): Promise<SentryProcess>;
  /** Stops the running sentry; returns its exit code. */
  stop(): Promise<number | null | undefined>;
}

export function useTestHosts(options: { tools: string[]; modules?: string[]; servicePort: number }): HostsSuite {
  let net: TestNet | undefined;
  let service: ChildProcess | undefined;
  let sentry: SentryProcess | undefined;
  before(async () => {
    if (process.getuid?.() !== 0) return;
    net = await TestNet.create();
    service = await net.service(options.servicePort);
  });
  after(async () => {
    service?.kill();
    await net?.destroy();
  });
  const stop = async () => {
    const code = await sentry?.stop();
    sentry = undefined;
    return code;
  };
  afterEach(stop);
  return {
    get net() {
      if (!net) throw new Error('test hosts were not created (not root?)');
      return net;
    },
    ready: (t) => prerequisites(t, { root: true, tools: options.tools, ...(options.modules ? { modules: options.modules } : {}) }),
    start: async (policy) => {
      await stop();
      sentry = await SentryProcess.start(net!, policy, ['--flush-on-exit']);
      return sentry;
    },
    stop,
  };
}
