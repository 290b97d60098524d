// The standalone sentry's block record (pure): one entry per block in force, what made it
// and until when. The file form is checked field by field where it is read.
import { PROBE_TYPES, type ProbeType } from '../engine/probe.js';
import { addressOrNetworkOf, isNetwork, type AddressOrNetwork } from '../net/address.js';
import { CLASSIC_MODES, type ClassicMode } from '../policy/classic-modes.js';
import type { BlockRecord } from '../engine/engine.js';
import type { Protocol } from '../policy/types.js';

export type BlockOrigin = 'detected' | 'manual';

/** The probe that triggered a detected block: what the engine needs to take the block back. */
export interface TriggeringProbe {
  protocol: Protocol;
  port: number;
  mode: 'bind' | 'stealth' | 'advanced';
  type: ProbeType;
  verified: boolean;
}

export interface BlockEntry {
  /** The address or network, parsed where the entry came in (the record file, an admin, a detection). */
  target: AddressOrNetwork;
  /** Made by a detection (the sentry or its kernel fast path) or by an admin. */
  origin: BlockOrigin;
  /** Why, in words: the scan ("TCP SYN/Normal scan"), or the admin's reason. */
  reason: string;
  /** The source's distinct probes in the window when it was blocked ("tcp/79"). */
  ports: string[];
  types: ProbeType[];
  /** The classic mode that caught it (stcp), for a detection. */
  mode?: ClassicMode;
  probe?: TriggeringProbe;
  /** Epoch milliseconds. */
  since: number;
  /** Epoch milliseconds; null: until lifted by hand. */
  until: number | null;
}

/** An entry as the record file and the control socket's replies write it: the target as its text. */
export type BlockEntryJson = Omit<BlockEntry, 'target'> & { address: string };

export function entryJson({ target, ...rest }: BlockEntry): BlockEntryJson {
  return { address: target.text, ...rest };
}

export const RECORD_VERSION = 1;

export class RecordError extends Error {
  override name = 'RecordError';
}

/** The record entry of a block the engine decided. */
export function detectedEntry(block: BlockRecord, reason: string, ports: string[], types: ProbeType[], mode: ClassicMode): BlockEntry {
  return {
    target: block.source,
    origin: 'detected',
    reason,
    ports,
    types,
    mode,
    probe: { protocol: block.protocol, port: block.port, mode: block.mode, type: block.type, verified: block.verified },
    since: block.since,
    until: block.until,
  };
}

/** The engine's form of a detected single-address block (null for the others, which it holds as addresses). */
export function engineBlock(entry: BlockEntry): BlockRecord | null {
  const source = entry.target;
  if (!entry.probe || entry.until === null || isNetwork(source)) return null;
  return { source, action: 'block', ...entry.probe, since: entry.since, until: entry.until };
}

export function renderRecord(entries: Iterable<BlockEntry>): string {
  return `${JSON.stringify({ version: RECORD_VERSION, blocks: [...entries].map(entryJson) }, null, 1)}\n`;
}

const TYPES = PROBE_TYPES;
const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses the record file's text; every problem names the file and the field. */
export function parseRecord(text: string, file: string): BlockEntry[] {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new RecordError(`${file}: not JSON (${(err as Error).message})`);
  }
  if (!isObject(doc) || doc.version !== RECORD_VERSION || !Array.isArray(doc.blocks))
    throw new RecordError(`${file}: not a block record (expected {"version": ${RECORD_VERSION}, "blocks": [...]})`);
  const seen = new Set<string>();
  return doc.blocks.map((raw, i) => {
    const where = `${file}: blocks[${i}]`;
    const fail = (field: string, what: string): never => {
      throw new RecordError(`${where}.${field}: ${what}`);
    };
    if (!isObject(raw)) return fail('', 'not an object');
    const target = typeof raw.address === 'string' ? addressOrNetworkOf(raw.address) : null;
    if (!target) return fail('address', `${JSON.stringify(raw.address)} is not an address or CIDR`);
    if (seen.has(target.text)) fail('address', `${target.text} is recorded twice`);
    seen.add(target.text);
    if (raw.origin !== 'detected' && raw.origin !== 'manual') fail('origin', 'must be "detected" or "manual"');
    if (typeof raw.reason !== 'string') fail('reason', 'must be a string');
    if (!Array.isArray(raw.ports) || !raw.ports.every((p) => typeof p === 'string' && /^(tcp|udp)\/\d{1,5}$/.test(p))) fail('ports', 'must be a list like ["tcp/79"]');
    if (!Array.isArray(raw.types) || !raw.types.every((t) => TYPES.includes(t as ProbeType))) fail('types', `must be a list of ${TYPES.join(', ')}`);
    if (raw.mode !== undefined && !CLASSIC_MODES.includes(raw.mode as ClassicMode)) fail('mode', `must be one of ${CLASSIC_MODES.join(', ')}`);
    if (!isTime(raw.since)) fail('since', 'must be a time in milliseconds');
    if (raw.until !== null && !isTime(raw.until)) fail('until', 'must be a time in milliseconds, or null');
    let probe: TriggeringProbe | undefined;
    if (raw.probe !== undefined) {
      const p = raw.probe;
      const ok =
        isObject(p) &&
        (p.protocol === 'tcp' || p.protocol === 'udp') &&
        Number.isInteger(p.port) && (p.port as number) >= 1 && (p.port as number) <= 65535 &&
        ['bind', 'stealth', 'advanced'].includes(p.mode as string) &&
        TYPES.includes(p.type as ProbeType) &&
        typeof p.verified === 'boolean';
      if (!ok) fail('probe', 'must hold protocol, port, mode, type and verified');
      probe = p as unknown as TriggeringProbe;
    }
    return {
      target,
      origin: raw.origin as BlockOrigin,
      reason: raw.reason as string,
      ports: raw.ports as string[],
      types: raw.types as ProbeType[],
      ...(raw.mode !== undefined ? { mode: raw.mode as ClassicMode } : {}),
      ...(probe ? { probe: { protocol: probe.protocol, port: probe.port, mode: probe.mode, type: probe.type, verified: probe.verified } } : {}),
      since: raw.since as number,
      until: raw.until as number | null,
    };
  });
}
