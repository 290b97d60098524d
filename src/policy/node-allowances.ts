// What a policy would have root do on a node besides blocking: programs to run
// (response.command, route.command, unblockCommand) and a hosts.deny file to append to. In
// a cluster the agent runs as root with NET_ADMIN in the node's network namespace, and
// whoever writes a PortSentryPolicy chooses these: a node does only what its admin allowed
// (the chart's agent.commands and agent.hostsDeny). The standalone sentry's policy file is
// its admin's, and is not checked.
import type { PolicySpec } from './types.js';

export interface NodeAllowances {
  /** Programs, as absolute paths, exactly as policies write them. */
  commands: readonly string[];
  /** hosts.deny files, as absolute paths. */
  hostsDenyFiles: readonly string[];
}

export interface Refusal {
  /** The field naming it, e.g. spec.response.command. */
  field: string;
  value: string;
  kind: 'command' | 'hosts.deny file';
}

export function refusalsOf(spec: PolicySpec, allowed: NodeAllowances): Refusal[] {
  const r = spec.response;
  const out: Refusal[] = [];
  const program = (field: string, argv: string[]) => {
    if (argv.length && !allowed.commands.includes(argv[0]!)) out.push({ field, value: argv[0]!, kind: 'command' });
  };
  program('spec.response.command', r.command);
  program('spec.response.route.command', r.route.command);
  program('spec.response.unblockCommand', r.unblockCommand);
  if (r.hostsDeny.enabled && !allowed.hostsDenyFiles.includes(r.hostsDeny.path))
    out.push({ field: 'spec.response.hostsDeny.path', value: r.hostsDeny.path, kind: 'hosts.deny file' });
  return out;
}

export function describeRefusals(refusals: Refusal[]): string {
  return refusals.map((p) => `${p.field}: ${JSON.stringify(p.value)} is not an allowed ${p.kind}`).join('; ');
}

/** The policy's condition reason: commands first, as they are the graver. */
export function refusalReason(refusals: Refusal[]): 'CommandNotAllowed' | 'HostsDenyNotAllowed' {
  return refusals.some((p) => p.kind === 'command') ? 'CommandNotAllowed' : 'HostsDenyNotAllowed';
}
