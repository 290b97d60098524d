// $TARGET$ $PORT$ $MODE$ substitution for commands and hosts.deny lines. Only values that
// were checked to be an address, a port number and a classic mode name are ever inserted:
// a name from reverse DNS or any other text can never reach a command.
import { CLASSIC_MODES, type ClassicMode } from '../policy/classic-modes.js';
import type { Address } from '../net/address.js';
import { normalizeIp } from '../net/ip.js';

export interface Substitution {
  /** An address a probe carried (parsed once, by its reader), or text to be checked. */
  target: Address | string;
  port: number;
  mode: ClassicMode;
}

export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
}

/** Substitution values checked, the target as canonical text. */
export interface CheckedSubstitution {
  target: string;
  port: number;
  mode: ClassicMode;
}

/**
 * Checks the values; returns them in canonical form or throws SubstitutionError. An
 * Address's text was written by formatIp from its bytes: it is taken as it is, once it is
 * seen to hold address characters only.
 */
export function checkSubstitution(values: { target: unknown; port: unknown; mode: unknown }): CheckedSubstitution {
  const target = isAddress(values.target) ? (ADDRESS_TEXT.test(values.target.text) ? values.target.text : null) : typeof values.target === 'string' ? normalizeIp(values.target) : null;
  if (!target) throw new SubstitutionError(`refusing $TARGET$ that is not an IP address: ${JSON.stringify(values.target)?.slice(0, 80)}`);
  const port = values.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new SubstitutionError(`refusing $PORT$ that is not a port number: ${JSON.stringify(port)?.slice(0, 80)}`);
  if (!(CLASSIC_MODES as readonly unknown[]).includes(values.mode))
    throw new SubstitutionError(`refusing $MODE$ that is not a mode name: ${JSON.stringify(values.mode)?.slice(0, 80)}`);
  return { target, port, mode: values.mode as ClassicMode };
}

const ADDRESS_TEXT = /^[0-9a-f.:]{2,39}$/;

/** An Address object (net/address.ts), not text. */
function isAddress(v: unknown): v is Address {
  return typeof v === 'object' && v !== null && typeof (v as Address).text === 'string';
}

export function substitute(text: string, values: Substitution): string {
  const checked = checkSubstitution(values);
  return text
    .replaceAll('$TARGET$', checked.target)
    .replaceAll('$PORT$', String(checked.port))
    .replaceAll('$MODE$', checked.mode);
}

export function substituteArgv(argv: readonly string[], values: Substitution): string[] {
  return argv.map((arg) => substitute(arg, values));
}
