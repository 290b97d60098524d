// A policy as the code runs it: compiled once from a valid spec (durations in milliseconds,
// port lists expanded), so that no use site parses a duration or a port list again.
import { parseDuration } from './duration.js';
import { expandPorts } from './ports.js';
import type { PolicySpec, Protocol } from './types.js';
import { validateSpec, type Validated } from './validate.js';

export interface CompiledProtocol {
  /** Tripwire ports (bind and stealth modes), sorted and distinct. */
  readonly ports: readonly number[];
  /** Ports advanced mode never reports, sorted and distinct. */
  readonly exclude: readonly number[];
}

export interface CompiledPolicy {
  /** The spec it came from, as written (what the operator publishes to the nodes). */
  readonly spec: PolicySpec;
  readonly windowMs: number;
  readonly durationMs: number;
  readonly tcp: CompiledProtocol;
  readonly udp: CompiledProtocol;
}

/** Compiles a spec that passed validation; an Error names what was not valid. */
export function compilePolicy(spec: PolicySpec): CompiledPolicy {
  const protocol = (p: Protocol): CompiledProtocol => ({ ports: expandPorts(spec[p].ports), exclude: expandPorts(spec[p].exclude) });
  return {
    spec,
    windowMs: duration(spec.trigger.window, 'trigger.window'),
    durationMs: duration(spec.response.duration, 'response.duration'),
    tcp: protocol('tcp'),
    udp: protocol('udp'),
  };
}

/** Validates untrusted input and compiles it: the runtime form, or every problem. */
export function compileSpec(input: unknown, path = 'spec'): Validated<CompiledPolicy> {
  const r = validateSpec(input, path);
  return r.ok ? { ok: true, value: compilePolicy(r.value) } : r;
}

function duration(text: string, field: string): number {
  const ms = parseDuration(text);
  if (ms === null) throw new Error(`${field}: ${JSON.stringify(text)} is not a duration`);
  return ms;
}
