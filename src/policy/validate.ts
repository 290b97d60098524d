// Turns untrusted input (a parsed YAML file, a custom resource) into a complete, valid
// policy document, or the full list of problems with their field paths.
import { documentSchema, specSchema } from './spec-schema.js';
import { validate, type Problem } from './schema.js';
import type { PolicyDocument, PolicySpec } from './types.js';

export type { Problem } from './schema.js';

/** Rules that span several fields (the CRD states them as CEL rules). */
function crossFieldProblems(spec: PolicySpec, path: string): Problem[] {
  const problems: Problem[] = [];
  for (const proto of ['tcp', 'udp'] as const) {
    if (spec.response[proto] === 'command' && spec.response.command.length === 0)
      problems.push({
        path: `${path}.response.command`,
        message: `is required when response.${proto} is "command"`,
      });
  }
  if (spec.response.runCommandFirst && spec.response.command.length === 0)
    problems.push({ path: `${path}.response.runCommandFirst`, message: 'needs response.command' });
  if (spec.response.kernelFastPath) {
    const at = `${path}.response.kernelFastPath`;
    // The kernel blocks at the first probe, from an unverifiable packet, with nft rules.
    if (spec.trigger.count !== 0) problems.push({ path: at, message: 'needs trigger.count 0' });
    if (spec.response.verifiedOnly) problems.push({ path: at, message: 'cannot be combined with verifiedOnly' });
    if (spec.response.firewall === 'iptables' || spec.response.firewall === 'none')
      problems.push({ path: at, message: 'needs response.firewall nftables (or auto)' });
  }
  return problems;
}

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

export function validateDocument(input: unknown): Validated<PolicyDocument> {
  const problems: Problem[] = [];
  const doc = validate(documentSchema, input, '', problems) as PolicyDocument;
  if (problems.length === 0) problems.push(...crossFieldProblems(doc.spec, 'spec'));
  return problems.length ? { ok: false, problems } : { ok: true, value: doc };
}

export function validateSpec(input: unknown, path = 'spec'): Validated<PolicySpec> {
  const problems: Problem[] = [];
  const spec = validate(specSchema, input, path, problems) as PolicySpec;
  if (problems.length === 0) problems.push(...crossFieldProblems(spec, path));
  return problems.length ? { ok: false, problems } : { ok: true, value: spec };
}

export function formatProblems(problems: readonly Problem[]): string {
  return problems.map((p) => `  ${p.path || '(document)'}: ${p.message}`).join('\n');
}
