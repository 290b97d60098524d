// The log line formats besides JSON (pure): `text` for a person at a terminal, and
// `classic`, the plain lines PortSentry sent to syslog, for logcheck and syslog-based rules
// (under systemd the journal adds the time and the process name).
export const LOG_FORMATS = ['json', 'text', 'classic'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** One pino record, as it is serialised. */
export type LogRecord = Record<string, unknown> & { level?: string; time?: string; msg?: string };

const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'name', 'hostname']);

function value(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  return JSON.stringify(v);
}

/** `12:00:01.234 WARN  scan detected: blocking source=198.18.0.1 port=79` */
export function formatText(r: LogRecord): string {
  const time = typeof r.time === 'string' ? r.time.slice(11, 23) : '';
  const level = (r.level ?? '').toUpperCase().padEnd(5);
  const fields = Object.entries(r)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${value(v)}`);
  return [time, level, r.msg ?? '', ...fields].filter(Boolean).join(' ');
}

const PROTO = (r: LogRecord): string => String(r.protocol ?? '').toUpperCase();

/** PortSentry's words for what was done to a blocked host (response in place, `done`). */
function doneLine(source: string, done: string): string {
  const [action, ...rest] = done.split(' ');
  const detail = rest.join(' ');
  switch (action) {
    case 'route':
      return `attackalert: Host ${source} has been blocked via dropped route using command: "${detail}"`;
    case 'hosts-deny':
      return `attackalert: Host ${source} has been blocked via wrappers with string: "${detail}"`;
    case 'command':
      return `attackalert: External command run for host: ${source} using command: "${detail}"`;
    default:
      return `attackalert: Host ${source} has been blocked via ${detail} firewall set`;
  }
}

const ALERT_REASONS: Record<string, string> = {
  unverified: 'its source is not verified (response.verifiedOnly)',
  'rate-limited': 'more blocks this minute than response.maxBlocksPerMinute allows',
};

/**
 * The classic lines of one record: PortSentry's own where it had one (its attackalert lines
 * already are), the rest as adminalert lines with their key fields; none for lines that only
 * repeat what a classic line said.
 */
export function formatClassic(r: LogRecord): string[] {
  const msg = r.msg ?? '';
  if (msg.startsWith('attackalert:') || msg.startsWith('adminalert:')) return [msg];
  const source = String(r.source ?? '');
  switch (msg) {
    case 'sentry ready':
      return ['adminalert: PortSentry is now active and listening.'];
    case 'watching ports': {
      if (r.mode === 'advanced') return [`adminalert: Advanced mode will monitor ${value(r.ports)} ${PROTO(r)} ports`];
      const ports = Array.isArray(r.ports) ? r.ports : [];
      const how = r.mode === 'stealth' ? 'stealth listen mode' : 'listen mode';
      return ports.map((p) => `adminalert: Going into ${how} on ${PROTO(r)} port: ${p}`);
    }
    case 'ports used by a real service are not watched':
      return (Array.isArray(r.ports) ? r.ports : []).map((p) => `adminalert: ERROR: Socket ${p} is in use and will not be monitored. Attempting to continue`);
    case 'response in place':
      return (Array.isArray(r.done) ? r.done : []).map((d) => doneLine(source, String(d)));
    case 'scan detected':
      return [
        r.reason === 'policy'
          ? `attackalert: Ignoring ${PROTO(r)} response per configuration file setting.`
          : `attackalert: Not blocking host ${source}: ${ALERT_REASONS[String(r.reason)] ?? value(r.reason)}`,
      ];
    case 'scan detected: blocking':
    case 'scan detected: running command':
      return [];
  }
  const error = r.level === 'error' || r.level === 'fatal';
  const keys = ['source', 'protocol', 'port', 'action', 'err', 'file', 'record', 'kept', 'adopted', 'lifted', 'removed', 'blocks', 'signal'];
  const fields = keys.filter((k) => r[k] !== undefined).map((k) => `${k}=${value(r[k])}`);
  return [`adminalert: ${error ? 'ERROR: ' : ''}${msg}${fields.length ? ` (${fields.join(' ')})` : ''}`];
}
