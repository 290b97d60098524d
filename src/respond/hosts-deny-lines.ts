// The text of hosts.deny as the sentry edits it (pure). Every rule line the sentry writes
// comes right after a marker comment of its own, and only a rule line after that marker is
// ever taken out: a line the admin wrote stays, even one identical to the sentry's.
import type { ClassicMode } from '../policy/classic-modes.js';
import { isNetwork, prefixOf, type AddressOrNetwork } from '../net/address.js';
import { formatIp } from '../net/ip.js';
import { SubstitutionError, checkSubstitution } from './substitute.js';

export const HOSTS_DENY_MARK = '# kube-portsentry: the next line is its block, removed when the block is lifted';

/** An address or network as hosts_access(5) writes it: IPv6 in brackets, an IPv4 network as net/mask. */
export function hostsAccessPattern(target: AddressOrNetwork): string {
  const address = formatIp(target.bytes);
  const prefix = prefixOf(target);
  if (target.family === 6) return prefix === 128 ? `[${address}]` : `[${address}]/${prefix}`;
  if (prefix === 32) return address;
  const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
  return `${address}/${[24, 16, 8, 0].map((shift) => (mask >>> shift) & 0xff).join('.')}`;
}

/**
 * The hosts.deny line for a block: `$TARGET$` as hosts_access(5) wants it, `$PORT$` and
 * `$MODE$` from the probe that triggered it (a manual block has none).
 */
export function hostsDenyLine(template: string, block: { target: AddressOrNetwork; port?: number; mode?: ClassicMode }): string {
  let line = template.replaceAll('$TARGET$', hostsAccessPattern(block.target));
  if (line.includes('$PORT$') || line.includes('$MODE$')) {
    if (block.port === undefined || block.mode === undefined)
      throw new SubstitutionError('the hosts.deny line uses $PORT$ or $MODE$, and a manual block has neither');
    const checked = checkSubstitution({ target: isNetwork(block.target) ? formatIp(block.target.bytes) : block.target, port: block.port, mode: block.mode });
    line = line.replaceAll('$PORT$', String(checked.port)).replaceAll('$MODE$', checked.mode);
  }
  if (/[\r\n]/.test(line)) throw new SubstitutionError('the hosts.deny line holds a line break');
  return line;
}

const isRule = (line: string | undefined): line is string => !!line && line !== HOSTS_DENY_MARK;

/** The rule lines the sentry wrote (each after its marker), in file order. */
export function ownLines(text: string): string[] {
  const lines = text.split('\n');
  const own: string[] = [];
  for (let i = 0; i + 1 < lines.length; i++) if (lines[i] === HOSTS_DENY_MARK && isRule(lines[i + 1])) own.push(lines[++i]!);
  return own;
}

/** The text with `line` added as the sentry's own, or null when it already is. */
export function addOwnLine(text: string, line: string): string | null {
  if (ownLines(text).includes(line)) return null;
  const sep = text && !text.endsWith('\n') ? '\n' : '';
  return `${text}${sep}${HOSTS_DENY_MARK}\n${line}\n`;
}

/**
 * The text without the sentry's own lines that `drop` picks (with their markers), and
 * those lines; every other line, the admin's included, is kept byte for byte.
 */
export function removeOwnLines(text: string, drop: (line: string) => boolean): { text: string; removed: string[] } {
  const lines = text.split('\n');
  const kept: string[] = [];
  const removed: string[] = [];
  for (let i = 0; i < lines.length; i++) {
    const next = lines[i + 1];
    if (lines[i] === HOSTS_DENY_MARK && isRule(next) && drop(next)) {
      removed.push(next);
      i++;
      continue;
    }
    kept.push(lines[i]!);
  }
  return { text: kept.join('\n'), removed };
}
