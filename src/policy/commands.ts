// The programs a policy would run on a host. In a cluster they run as root with NET_ADMIN in
// the node's network namespace, so a node runs only the programs its admin allowed.
import type { PolicySpec } from './types.js';

export interface PolicyProgram {
  /** The field naming it, e.g. spec.response.command. */
  field: string;
  program: string;
}

export function programsOf(spec: PolicySpec): PolicyProgram[] {
  const r = spec.response;
  const out: PolicyProgram[] = [];
  if (r.command.length) out.push({ field: 'spec.response.command', program: r.command[0]! });
  if (r.route.command.length) out.push({ field: 'spec.response.route.command', program: r.route.command[0]! });
  if (r.unblockCommand.length) out.push({ field: 'spec.response.unblockCommand', program: r.unblockCommand[0]! });
  return out;
}

/** The programs of `spec` not in `allowed` (compared as written: absolute paths). */
export function disallowedPrograms(spec: PolicySpec, allowed: readonly string[]): PolicyProgram[] {
  return programsOf(spec).filter((p) => !allowed.includes(p.program));
}

export function describeDisallowed(programs: PolicyProgram[]): string {
  return programs.map((p) => `${p.field}: ${JSON.stringify(p.program)} is not an allowed command`).join('; ');
}
