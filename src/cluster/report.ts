// What an agent tells the operator: per source, the probes it saw since its last report.
// The operator reads these from the network, so parsing is strict and bounded.
import { PROBE_TYPES } from '../engine/probe.js';
import { normalizeIp } from '../net/ip.js';

export const REPORT_PATH = '/v1/reports';
/** The header of a 503 from the replica that is not the leader (its value: `standby`). */
export const STANDBY_HEADER = 'kube-portsentry-role';
export const MAX_REPORT_BYTES = 1 << 20;
export const MAX_SOURCES_PER_REPORT = 1000;
export const MAX_PROBES_PER_SOURCE = 256;
const PROBE_TYPE_NAMES = new Set<string>(PROBE_TYPES);

export interface ReportedProbe {
  protocol: 'tcp' | 'udp';
  port: number;
  type: string;
  /** Epoch milliseconds, last seen. */
  time: number;
}

export interface SourceReport {
  source: string;
  probes: ReportedProbe[];
  /** Every probe seen, repeats included. */
  count: number;
  firstSeen: number;
  lastSeen: number;
  /** At least one probe completed a TCP handshake. */
  verified: boolean;
  /** The agent blocked it locally (its own trigger was met). */
  blocked: boolean;
}

/** What the agent knows of its node that the operator must not block anywhere either. */
export interface ReportedHost {
  gateways: string[];
  dns: string[];
  addresses: string[];
}

export interface Report {
  node: string;
  /** The policy in force on the node; null only in a report of no sources (a node without one). */
  policy: string | null;
  sources: SourceReport[];
  /** Why the node's detection is off (its policy failed to start); absent while it runs. */
  detectionOff?: string;
  /** The node's gateways, resolvers and interface addresses, as the agent last read them. */
  host?: ReportedHost;
}

/** Bytes of a report's JSON besides its sources: what a batch of sources must leave room for. */
export function reportEnvelopeBytes(node: string, policy: string | null): number {
  return Buffer.byteLength(JSON.stringify({ node, policy, sources: [] }));
}

export const MAX_HOST_ADDRESSES = 256;

/** Free text from a node as one line: control characters and line breaks become spaces. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, ' ');
}

/** Parses a report body; throws an Error whose message names the bad field. */
export function parseReport(text: string): Report {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`body is not JSON: ${(err as Error).message}`);
  }
  const obj = (v: unknown, path: string): Record<string, unknown> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${path}: must be an object`);
    return v as Record<string, unknown>;
  };
  const str = (v: unknown, path: string, max: number): string => {
    if (typeof v !== 'string' || v.length === 0 || v.length > max) throw new Error(`${path}: must be a string of 1-${max} characters`);
    return v;
  };
  const int = (v: unknown, path: string, min: number, max: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new Error(`${path}: must be an integer in ${min}-${max}`);
    return v;
  };
  const bool = (v: unknown, path: string): boolean => {
    if (typeof v !== 'boolean') throw new Error(`${path}: must be true or false`);
    return v;
  };
  const list = (v: unknown, path: string, max: number): unknown[] => {
    if (!Array.isArray(v) || v.length > max) throw new Error(`${path}: must be a list of at most ${max}`);
    return v;
  };
  const r = obj(doc, 'report');
  const TIME_MAX = 8.64e15;
  const addresses = (v: unknown, path: string): string[] =>
    list(v, path, MAX_HOST_ADDRESSES).map((a, i) => {
      const ip = normalizeIp(str(a, `${path}[${i}]`, 64));
      if (!ip) throw new Error(`${path}[${i}]: must be an IP address`);
      return ip;
    });
  const sources = list(r.sources, 'sources', MAX_SOURCES_PER_REPORT);
  let host: ReportedHost | undefined;
  if (r.host !== undefined) {
    const h = obj(r.host, 'host');
    host = { gateways: addresses(h.gateways, 'host.gateways'), dns: addresses(h.dns, 'host.dns'), addresses: addresses(h.addresses, 'host.addresses') };
  }
  return {
    node: str(r.node, 'node', 253),
    policy: sources.length === 0 && r.policy === null ? null : str(r.policy, 'policy', 253),
    ...(r.detectionOff === undefined ? {} : { detectionOff: printable(str(r.detectionOff, 'detectionOff', 1024)) }),
    ...(host ? { host } : {}),
    sources: sources.map((raw, i) => {
      const at = `sources[${i}]`;
      const s = obj(raw, at);
      const source = normalizeIp(str(s.source, `${at}.source`, 64));
      if (!source) throw new Error(`${at}.source: must be an IP address`);
      return {
        source,
        probes: list(s.probes, `${at}.probes`, MAX_PROBES_PER_SOURCE).map((rawProbe, j) => {
          const pat = `${at}.probes[${j}]`;
          const p = obj(rawProbe, pat);
          const protocol = p.protocol;
          if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`${pat}.protocol: must be tcp or udp`);
          const type = str(p.type, `${pat}.type`, 16);
          if (!PROBE_TYPE_NAMES.has(type)) throw new Error(`${pat}.type: unknown probe type ${JSON.stringify(type)}`);
          return { protocol, port: int(p.port, `${pat}.port`, 1, 65535), type, time: int(p.time, `${pat}.time`, 0, TIME_MAX) };
        }),
        count: int(s.count, `${at}.count`, 0, Number.MAX_SAFE_INTEGER),
        firstSeen: int(s.firstSeen, `${at}.firstSeen`, 0, TIME_MAX),
        lastSeen: int(s.lastSeen, `${at}.lastSeen`, 0, TIME_MAX),
        verified: bool(s.verified, `${at}.verified`),
        blocked: bool(s.blocked, `${at}.blocked`),
      };
    }),
  };
}
