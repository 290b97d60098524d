// The admin commands' requests (pure), checked the same way whether they come from the
// command line or over the control socket: nothing unchecked reaches the record, a log line
// or the kernel.
import { parseDuration } from '../policy/duration.js';
import { prefixOf, type AddressOrNetwork } from '../net/address.js';
import type { BlockEntry } from './entry.js';
import { parseTarget } from './target.js';

export type AdminRequest =
  | { command: 'blocks' }
  | { command: 'status' }
  /** durationMs null: until unblocked. */
  | { command: 'block'; target: AddressOrNetwork; durationMs: number | null; reason: string }
  | { command: 'unblock'; target: AddressOrNetwork };

export const DEFAULT_REASON = 'blocked by an admin';
const REASON_MAX = 200;

export type Checked = { ok: true; request: AdminRequest } | { ok: false; error: string };

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks a request: `{command, address?, duration?, reason?}` as the command line or the socket gives it. */
export function checkAdminRequest(raw: unknown): Checked {
  if (!isObject(raw)) return { ok: false, error: 'a request is a JSON object' };
  const command = raw.command;
  if (command === 'blocks' || command === 'status') return { ok: true, request: { command } };
  if (command !== 'block' && command !== 'unblock') return { ok: false, error: `unknown command ${JSON.stringify(command)}` };
  if (typeof raw.address !== 'string') return { ok: false, error: `${command} needs an address or CIDR` };
  const target = parseTarget(raw.address);
  if (!target.ok) return { ok: false, error: target.problem };
  if (command === 'unblock') return { ok: true, request: { command, target: target.target } };
  let durationMs: number | null = null;
  if (raw.duration !== undefined && raw.duration !== null) {
    const ms = typeof raw.duration === 'string' ? parseDuration(raw.duration) : null;
    if (ms === null || ms <= 0) return { ok: false, error: `--duration ${JSON.stringify(raw.duration)} is not a duration like 30m, 12h or 1h30m` };
    durationMs = ms;
  }
  const reason = raw.reason === undefined ? DEFAULT_REASON : raw.reason;
  if (typeof reason !== 'string' || reason.trim() === '') return { ok: false, error: '--reason must be some text' };
  if (reason.length > REASON_MAX) return { ok: false, error: `--reason is longer than ${REASON_MAX} characters` };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(reason)) return { ok: false, error: '--reason holds a control character (a line break, a tab...)' };
  return { ok: true, request: { command, target: target.target, durationMs, reason } };
}

/** Why `target` cannot be unblocked by itself (it lies inside a network blocked as a whole), or null. */
export function unblockProblem(target: AddressOrNetwork, blocks: readonly BlockEntry[]): string | null {
  if (blocks.some((b) => b.target.text === target.text)) return null;
  const prefix = prefixOf(target);
  for (const b of blocks) {
    const net = b.target;
    const netPrefix = prefixOf(net);
    if (net.family !== target.family || netPrefix >= prefix) continue;
    let inside = true;
    for (let bit = 0; bit < netPrefix && inside; bit++) inside = ((target.bytes[bit >> 3]! ^ net.bytes[bit >> 3]!) & (0x80 >> (bit & 7))) === 0;
    if (inside) return `${target.text} is inside ${net.text}, which is blocked as a whole: unblock ${net.text}`;
  }
  return null;
}
