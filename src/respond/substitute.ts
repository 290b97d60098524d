// $TARGET$ $PORT$ $MODE$ substitution for commands and hosts.deny lines. Only values that
// were checked to be an address, a port number and a classic mode name are ever inserted:
// a name from reverse DNS or any other text can never reach a command.
import { CLASSIC_MODES, type ClassicMode } from '../policy/classic-modes.js';
import { normalizeIp } from '../net/ip.js';

export interface Substitution {
  target: string;
  port: number;
  mode: ClassicMode;
}

export class SubstitutionError extends Error {
  override name = 'SubstitutionError';
}

/** Checks the values; returns them in canonical form or throws SubstitutionError. */
export function checkSubstitution(values: { target: unknown; port: unknown; mode: unknown }): Substitution {
  const target = typeof values.target === 'string' ? normalizeIp(values.target) : null;
  if (!target) throw new SubstitutionError(`refusing $TARGET$ that is not an IP address: ${JSON.stringify(values.target)?.slice(0, 80)}`);
  const port = values.port;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new SubstitutionError(`refusing $PORT$ that is not a port number: ${JSON.stringify(port)?.slice(0, 80)}`);
  if (!(CLASSIC_MODES as readonly unknown[]).includes(values.mode))
    throw new SubstitutionError(`refusing $MODE$ that is not a mode name: ${JSON.stringify(values.mode)?.slice(0, 80)}`);
  return { target, port, mode: values.mode as ClassicMode };
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
