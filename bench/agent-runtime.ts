// The agent container's runtime environment as the chart sets it (agent.runtimeEnv in
// charts/kube-portsentry/values.yaml), so the benchmarks measure what is shipped.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';

const VALUES = new URL('../../charts/kube-portsentry/values.yaml', import.meta.url);

export function agentRuntimeEnv(): Record<string, string> {
  const values = parse(readFileSync(VALUES, 'utf8')) as { agent?: { runtimeEnv?: Record<string, unknown> } };
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(values.agent?.runtimeEnv ?? {})) if (value !== '' && value !== null && value !== undefined) env[name] = String(value);
  return env;
}
