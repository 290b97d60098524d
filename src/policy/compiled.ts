// A policy as the code runs it: compiled once from a valid spec (durations in milliseconds,
// port lists expanded), so that no use site parses a duration or a port list again.
import { parseCidr, type Cidr } from '../net/ip.js';
import { parseDuration } from './duration.js';
import { expandPorts } from './ports.js';
import type { PolicyDocument, PolicySpec, Protocol } from './types.js';
import { validateSpec, type Validated } from './validate.js';

export interface CompiledProtocol {
  /** Tripwire ports (bind and stealth modes), sorted and distinct. */
  readonly ports: readonly number[];
  /** Ports advanced mode never reports, sorted and distinct. */
  readonly exclude: readonly number[];
}

export interface CompiledPolicy {
  readonly name: string;
  /** The spec it came from, as written (what the operator publishes to the nodes). */
  readonly spec: PolicySpec;
  /** spec.ignore, parsed. */
  readonly ignore: readonly Cidr[];
  readonly windowMs: number;
  readonly durationMs: number;
  readonly tcp: CompiledProtocol;
  readonly udp: CompiledProtocol;
}

/** Compiles a spec that passed validation; an Error names what was not valid. */
export function compilePolicy(name: string, spec: PolicySpec): CompiledPolicy {
  const protocol = (p: Protocol): CompiledProtocol => ({ ports: expandPorts(spec[p].ports), exclude: expandPorts(spec[p].exclude) });
  return {
    name,
    spec,
    ignore: spec.ignore.map((text, i) => {
      const cidr = parseCidr(text);
      if (!cidr) throw new Error(`ignore[${i}]: ${JSON.stringify(text)} is not an address or CIDR`);
      return cidr;
    }),
    windowMs: duration(spec.trigger.window, 'trigger.window'),
    durationMs: duration(spec.response.duration, 'response.duration'),
    tcp: protocol('tcp'),
    udp: protocol('udp'),
  };
}

/** Validates untrusted input and compiles it: the runtime form, or every problem. */
export function compileSpec(name: string, input: unknown, path = 'spec'): Validated<CompiledPolicy> {
  const r = validateSpec(input, path);
  return r.ok ? { ok: true, value: compilePolicy(name, r.value) } : r;
}

/** A validated document, compiled. */
export function compileDocument(doc: PolicyDocument): CompiledPolicy {
  return compilePolicy(doc.metadata.name, doc.spec);
}

function duration(text: string, field: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`${field}: ${JSON.stringify(text)} is not a duration`);
  return ms;
}
