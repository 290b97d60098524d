// Classic PortSentry configuration (portsentry.conf and its ignore file) for users
// migrating from PortSentry 1.2 or Debian's package. Pure: callers read the files and pass
// the text; every problem names the file, the line and the key.
import { formatCidr, parseCidr, parseIp } from '../net/ip.js';
import { defaultPolicy } from './default.js';
import { splitCommand } from './command-words.js';
import { parsePortSpec } from './ports.js';
import type { Action, DetectMode, PolicyDocument, PortSpec } from './types.js';
import { validateDocument, type Problem } from './validate.js';

/** Every key PortSentry 1.2 reads from portsentry.conf. */
export const CLASSIC_KEYS = [
  'TCP_PORTS',
  'UDP_PORTS',
  'ADVANCED_PORTS_TCP',
  'ADVANCED_PORTS_UDP',
  'ADVANCED_EXCLUDE_TCP',
  'ADVANCED_EXCLUDE_UDP',
  'IGNORE_FILE',
  'HISTORY_FILE',
  'BLOCKED_FILE',
  'RESOLVE_HOST',
  'BLOCK_UDP',
  'BLOCK_TCP',
  'KILL_ROUTE',
  'KILL_HOSTS_DENY',
  'KILL_RUN_CMD',
  'KILL_RUN_CMD_FIRST',
  'SCAN_TRIGGER',
  'PORT_BANNER',
] as const;

export type ClassicKey = (typeof CLASSIC_KEYS)[number];

export interface ClassicSetting {
  /** The value as written, quotes removed; `$TARGET$` and friends are kept verbatim. */
  value: string;
  line: number;
}

export interface ClassicConf {
  file: string;
  /** The first occurrence of each key (PortSentry read the first match and stopped). */
  settings: Partial<Record<ClassicKey, ClassicSetting>>;
  /** Duplicate keys and the like: not errors, but worth telling the user. */
  warnings: string[];
}

export interface ClassicProblem {
  file: string;
  /** 1-based; 0 when the problem belongs to no single line. */
  line: number;
  /** The classic key, or '' when the line has none. */
  key: string;
  message: string;
}

export function formatClassicProblem(p: ClassicProblem): string {
  return `${p.file}${p.line ? `:${p.line}` : ''}: ${p.key ? `${p.key}: ` : ''}${p.message}`;
}

export class ClassicConfError extends Error {
  readonly file: string;
  readonly line: number;
  readonly key: string;
  readonly problems: ClassicProblem[];

  constructor(problems: ClassicProblem[]) {
    if (problems.length === 0) throw new TypeError('ClassicConfError needs at least one problem');
    // One problem per line of the message, so each names its own file, line and key.
    super(problems.map(formatClassicProblem).join('\n'));
    this.name = 'ClassicConfError';
    const first = problems[0]!;
    this.file = first.file;
    this.line = first.line;
    this.key = first.key;
    this.problems = problems;
  }
}

const isClassicKey = (k: string): k is ClassicKey => (CLASSIC_KEYS as readonly string[]).includes(k);

// ---------------------------------------------------------------------------------------
// Values

type Parsed<T> = { value: T } | { error: string };

function flag(text: string, allowed: readonly string[]): Parsed<number> {
  const t = text.trim();
  if (allowed.includes(t)) return { value: Number(t) };
  return { error: `must be ${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}, got ${JSON.stringify(text)}` };
}

function wholeNumber(text: string, min: number, max: number, what: string): Parsed<number> {
  const t = text.trim();
  // Strict digits: atoi() would have read "-1" or "5x" silently, which hides mistakes.
  if (!/^\d{1,6}$/.test(t) || Number(t) < min || Number(t) > max)
    return { error: `must be ${what} from ${min} to ${max}, got ${JSON.stringify(text)}` };
  return { value: Number(t) };
}

/** A comma-separated classic port list; single ports become numbers, ranges stay "a-b". */
function portList(text: string): { value: PortSpec[]; errors: string[] } {
  const value: PortSpec[] = [];
  const errors: string[] = [];
  // PortSentry split with strtok(","), which skips empty items: "1,,2," is "1,2".
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (!item) continue;
    const r = parsePortSpec(item);
    if (typeof r === 'string') errors.push(r);
    else value.push(r.from === r.to && !item.includes('-') ? r.from : `${r.from}-${r.to}`);
  }
  return { value, errors };
}

const BLOCK_ACTIONS: readonly Action[] = ['alert', 'block', 'command'];

// ---------------------------------------------------------------------------------------
// portsentry.conf

/** Checks one key's value; returns problem messages (empty when the value is fine). */
function checkValue(key: ClassicKey, value: string): string[] {
  switch (key) {
    case 'TCP_PORTS':
    case 'UDP_PORTS':
    case 'ADVANCED_EXCLUDE_TCP':
    case 'ADVANCED_EXCLUDE_UDP':
      return portList(value).errors;
    case 'ADVANCED_PORTS_TCP':
    case 'ADVANCED_PORTS_UDP': {
      const r = wholeNumber(value, 1, 65535, 'a port number');
      return 'error' in r ? [r.error] : [];
    }
    case 'SCAN_TRIGGER': {
      const r = wholeNumber(value, 0, 255, 'a whole number');
      return 'error' in r ? [r.error] : [];
    }
    case 'BLOCK_TCP':
    case 'BLOCK_UDP': {
      const r = flag(value, ['0', '1', '2']);
      return 'error' in r ? [r.error] : [];
    }
    case 'RESOLVE_HOST':
    case 'KILL_RUN_CMD_FIRST': {
      const r = flag(value, ['0', '1']);
      return 'error' in r ? [r.error] : [];
    }
    case 'KILL_ROUTE':
    case 'KILL_RUN_CMD': {
      const r = splitCommand(value);
      if (typeof r === 'string') return [r];
      // PortSentry skipped a KILL_ROUTE without $TARGET$ at every scan; say so up front.
      if (key === 'KILL_ROUTE' && !value.includes('$TARGET$')) return ['must contain $TARGET$'];
      return [];
    }
    case 'KILL_HOSTS_DENY':
      return value.includes('$TARGET$') ? [] : ['must contain $TARGET$'];
    case 'IGNORE_FILE':
    case 'HISTORY_FILE':
    case 'BLOCKED_FILE':
    case 'PORT_BANNER':
      return [];
  }
}

interface LineResult {
  key: string;
  value?: string;
  error?: string;
}

/** Reads one non-comment line: KEY="value", KEY = 'value', KEY=value, each with an optional # comment. */
function parseLine(text: string): LineResult {
  const keyMatch = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text);
  if (!keyMatch) return { key: '', error: `expected KEY="value", got ${JSON.stringify(text)}` };
  const key = keyMatch[0];
  let i = key.length;
  while (text[i] === ' ' || text[i] === '\t') i++;
  if (text[i] !== '=') return { key, error: `expected "=" after the key, got ${JSON.stringify(text)}` };
  i++;
  while (text[i] === ' ' || text[i] === '\t') i++;
  let value: string;
  const q = text[i];
  if (q === '"' || q === "'") {
    // No escapes inside quotes: PortSentry took everything up to the next quote.
    const end = text.indexOf(q, i + 1);
    if (end < 0) return { key, error: `unterminated ${q} quote` };
    value = text.slice(i + 1, end);
    i = end + 1;
  } else {
    const m = /^[^\s]*/.exec(text.slice(i))![0];
    if (m.startsWith('#')) {
      value = '';
    } else {
      if (/["']/.test(m)) return { key, error: `stray quote in unquoted value ${JSON.stringify(m)}` };
      value = m;
      i += m.length;
    }
  }
  const rest = text.slice(i).trim();
  if (rest && !rest.startsWith('#'))
    return {
      key,
      error:
        `unexpected text after the value: ${JSON.stringify(rest)}` +
        (q === '"' || q === "'" ? '' : ' (quote a value that contains spaces)'),
    };
  // A tab is fine in a banner; other control characters only hide mistakes (or mischief).
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0008\u000b-\u001f\u007f]/.test(value)) return { key, error: 'the value contains a control character' };
  return { key, value };
}

/**
 * Parses the text of a classic portsentry.conf. Throws ClassicConfError listing every
 * problem in the file; duplicate keys are warnings (the first occurrence wins, as in
 * PortSentry).
 */
export function parseClassicConf(text: string, file: string): ClassicConf {
  const settings: Partial<Record<ClassicKey, ClassicSetting>> = {};
  const warnings: string[] = [];
  const problems: ClassicProblem[] = [];
  const lines = text.split(/\r\n|\n|\r/);
  lines.forEach((raw, index) => {
    const line = index + 1;
    const body = raw.trim();
    if (!body || body.startsWith('#')) return;
    const r = parseLine(body);
    if (r.error !== undefined || r.value === undefined) {
      problems.push({ file, line, key: r.key, message: r.error ?? 'cannot be read' });
      return;
    }
    if (!isClassicKey(r.key)) {
      problems.push({ file, line, key: r.key, message: `unknown key (PortSentry keys: ${CLASSIC_KEYS.join(', ')})` });
      return;
    }
    const first = settings[r.key];
    if (first) {
      warnings.push(
        `${file}:${line}: ${r.key}: duplicate key ignored; the first one (line ${first.line}) applies, as in PortSentry`,
      );
      return;
    }
    settings[r.key] = { value: r.value, line };
    // An empty value means "not set", so there is nothing to check.
    if (r.value.trim() === '') return;
    for (const message of checkValue(r.key, r.value)) problems.push({ file, line, key: r.key, message });
  });
  if (problems.length) throw new ClassicConfError(problems);
  return { file, settings, warnings };
}

// ---------------------------------------------------------------------------------------
// Ignore file

function netmaskBits(mask: string): number | string {
  const ip = parseIp(mask);
  if (!ip || ip.family !== 4 || mask.includes(':')) return `${JSON.stringify(mask)} is not a netmask`;
  let bits = 0;
  let ended = false;
  for (const byte of ip.bytes) {
    for (let b = 7; b >= 0; b--) {
      const set = (byte >> b) & 1;
      if (set && ended) return `netmask ${mask} is not contiguous`;
      if (set) bits++;
      else ended = true;
    }
  }
  return bits;
}

/**
 * Parses a classic ignore file: one address, address/bits or address/dotted-netmask per
 * line, IPv4 or IPv6, with # comments. Returns canonical CIDRs, each once.
 */
export function parseIgnoreFile(text: string, file: string): string[] {
  const out: string[] = [];
  const problems: ClassicProblem[] = [];
  text.split(/\r\n|\n|\r/).forEach((raw, index) => {
    const line = index + 1;
    const hash = raw.indexOf('#');
    const body = (hash >= 0 ? raw.slice(0, hash) : raw).trim();
    if (!body) return;
    const fail = (message: string) => problems.push({ file, line, key: '', message });
    if (/\s/.test(body)) return fail(`expected one address or CIDR per line, got ${JSON.stringify(body)}`);
    let entry = body;
    const slash = body.indexOf('/');
    if (slash >= 0 && body.slice(slash + 1).includes('.')) {
      // PortSentry accepted addr/255.255.255.0; the policy wants a prefix length.
      if (body.slice(0, slash).includes(':')) return fail(`a dotted netmask needs an IPv4 address: ${JSON.stringify(body)}`);
      const bits = netmaskBits(body.slice(slash + 1));
      if (typeof bits === 'string') return fail(bits);
      entry = `${body.slice(0, slash)}/${bits}`;
    }
    const cidr = parseCidr(entry);
    if (!cidr) return fail(`${JSON.stringify(body)} is not an IP address, CIDR or address/netmask`);
    const canonical = formatCidr(cidr);
    if (!out.includes(canonical)) out.push(canonical);
  });
  if (problems.length) throw new ClassicConfError(problems);
  return out;
}

// ---------------------------------------------------------------------------------------
// Mode flags

const MODE_FLAGS: Record<string, { proto: 'tcp' | 'udp'; mode: DetectMode }> = {
  '-tcp': { proto: 'tcp', mode: 'bind' },
  '-udp': { proto: 'udp', mode: 'bind' },
  '-stcp': { proto: 'tcp', mode: 'stealth' },
  '-sudp': { proto: 'udp', mode: 'stealth' },
  '-atcp': { proto: 'tcp', mode: 'advanced' },
  '-audp': { proto: 'udp', mode: 'advanced' },
};

/**
 * The classic mode flags: -tcp/-stcp/-atcp and -udp/-sudp/-audp, at most one per protocol.
 * None means "-tcp -udp"; a protocol without a flag is off when the other has one.
 */
export function parseClassicModeFlags(args: string[]): { tcp: DetectMode; udp: DetectMode } | string {
  const seen: { tcp?: string; udp?: string } = {};
  for (const arg of args) {
    const f = Object.hasOwn(MODE_FLAGS, arg) ? MODE_FLAGS[arg] : undefined;
    if (!f) return `unknown flag ${JSON.stringify(arg)} (classic mode flags: ${Object.keys(MODE_FLAGS).join(' ')})`;
    const before = seen[f.proto];
    if (before)
      return `${before} and ${arg} both set the ${f.proto.toUpperCase()} mode; give at most one flag per protocol`;
    seen[f.proto] = arg;
  }
  if (!seen.tcp && !seen.udp) return { tcp: 'bind', udp: 'bind' };
  return {
    tcp: seen.tcp ? MODE_FLAGS[seen.tcp]!.mode : 'off',
    udp: seen.udp ? MODE_FLAGS[seen.udp]!.mode : 'off',
  };
}

/**
 * Debian's /etc/default/portsentry, as its init script read it: TCP_MODE (tcp, stcp, atcp)
 * and UDP_MODE (udp, sudp, audp), each empty for "not started". Returns the classic mode
 * flags they stand for; other keys are warnings, bad values problems with their line.
 */
export function parseDebianDefaults(text: string, file: string): { flags: string[]; warnings: string[] } {
  const allowed: Record<string, string[]> = { TCP_MODE: ['tcp', 'stcp', 'atcp'], UDP_MODE: ['udp', 'sudp', 'audp'] };
  const values: Record<string, string> = {};
  const warnings: string[] = [];
  const problems: ClassicProblem[] = [];
  text.split(/\r\n|\n|\r/).forEach((raw, index) => {
    const body = raw.trim().replace(/^export\s+/, '');
    if (!body || body.startsWith('#')) return;
    const r = parseLine(body);
    const line = index + 1;
    if (r.error !== undefined || r.value === undefined) return problems.push({ file, line, key: r.key, message: r.error ?? 'cannot be read' });
    const choices = allowed[r.key];
    if (!choices) return warnings.push(`${file}:${line}: ${r.key}: not read (only TCP_MODE and UDP_MODE are)`);
    if (r.value !== '' && !choices.includes(r.value)) return problems.push({ file, line, key: r.key, message: `must be one of ${choices.join(', ')}, or empty` });
    values[r.key] = r.value;
  });
  const flags = ['TCP_MODE', 'UDP_MODE'].filter((k) => values[k]).map((k) => `-${values[k]}`);
  if (!problems.length && !flags.length) problems.push({ file, line: 0, key: 'TCP_MODE', message: 'neither TCP_MODE nor UDP_MODE is set: nothing would run' });
  if (problems.length) throw new ClassicConfError(problems);
  return { flags, warnings };
}

// ---------------------------------------------------------------------------------------
// Conversion

/** Where each policy field comes from, to name the classic key when validation fails. */
const FIELD_KEYS: [string, ClassicKey][] = [
  ['spec.tcp.ports', 'TCP_PORTS'],
  ['spec.udp.ports', 'UDP_PORTS'],
  ['spec.tcp.advancedLimit', 'ADVANCED_PORTS_TCP'],
  ['spec.udp.advancedLimit', 'ADVANCED_PORTS_UDP'],
  ['spec.tcp.exclude', 'ADVANCED_EXCLUDE_TCP'],
  ['spec.udp.exclude', 'ADVANCED_EXCLUDE_UDP'],
  ['spec.ignore', 'IGNORE_FILE'],
  ['spec.files.history', 'HISTORY_FILE'],
  ['spec.files.blocked', 'BLOCKED_FILE'],
  ['spec.response.resolveHosts', 'RESOLVE_HOST'],
  ['spec.response.tcp', 'BLOCK_TCP'],
  ['spec.response.udp', 'BLOCK_UDP'],
  ['spec.response.route', 'KILL_ROUTE'],
  ['spec.response.hostsDeny', 'KILL_HOSTS_DENY'],
  ['spec.response.command', 'KILL_RUN_CMD'],
  ['spec.response.runCommandFirst', 'KILL_RUN_CMD_FIRST'],
  ['spec.trigger.count', 'SCAN_TRIGGER'],
  ['spec.response.banner', 'PORT_BANNER'],
];

function problemFor(conf: ClassicConf, p: Problem): ClassicProblem {
  const at = (key: ClassicKey, message: string): ClassicProblem => ({
    file: conf.file,
    line: conf.settings[key]?.line ?? 0,
    key,
    message,
  });
  // The cross-field rules are about the action, not the command: name the BLOCK_* line.
  for (const proto of ['tcp', 'udp'] as const)
    if (p.path === 'spec.response.command' && p.message.includes(`response.${proto} is "command"`))
      return at(
        proto === 'tcp' ? 'BLOCK_TCP' : 'BLOCK_UDP',
        'is 2 (run KILL_RUN_CMD only) but KILL_RUN_CMD is not set',
      );
  if (p.path === 'spec.response.runCommandFirst') return at('KILL_RUN_CMD_FIRST', 'is 1 but KILL_RUN_CMD is not set');
  for (const [prefix, key] of FIELD_KEYS) {
    const boundary = p.path[prefix.length];
    if (p.path.startsWith(prefix) && (boundary === undefined || boundary === '.' || boundary === '['))
      return at(key, `${p.path}: ${p.message}`);
  }
  return { file: conf.file, line: 0, key: '', message: `${p.path || '(document)'}: ${p.message}` };
}

function canonicalCidr(text: string): string {
  const c = parseCidr(text);
  return c ? formatCidr(c) : text;
}

/**
 * Builds the policy a classic configuration means. The modes come from the classic
 * command-line flags; the ignore entries from the file IGNORE_FILE names (read by the
 * caller). Throws ClassicConfError when the result is not a valid policy.
 */
export function classicToPolicy(
  conf: ClassicConf,
  options: { modes: { tcp: DetectMode; udp: DetectMode }; ignoreEntries?: string[]; ignoreFileMissing?: boolean },
): { policy: PolicyDocument; warnings: string[] } {
  const policy = defaultPolicy();
  const spec = policy.spec;
  const warnings = [...conf.warnings];
  const problems: ClassicProblem[] = [];
  /** The key's value, or undefined when absent or empty ("not set"). */
  const get = (key: ClassicKey): string | undefined => {
    const v = conf.settings[key]?.value;
    return v === undefined || v.trim() === '' ? undefined : v;
  };
  const bad = (key: ClassicKey, message: string) =>
    problems.push({ file: conf.file, line: conf.settings[key]?.line ?? 0, key, message });
  // Values are checked again here because a ClassicConf may be built without the parser.
  const ports = (key: ClassicKey): PortSpec[] | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    const r = portList(v);
    for (const e of r.errors) bad(key, e);
    return r.value;
  };
  const number = (key: ClassicKey, min: number, max: number, what: string): number | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    const r = wholeNumber(v, min, max, what);
    if ('error' in r) bad(key, r.error);
    return 'value' in r ? r.value : undefined;
  };
  const flagOf = (key: ClassicKey, allowed: string[]): number | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    const r = flag(v, allowed);
    if ('error' in r) bad(key, r.error);
    return 'value' in r ? r.value : undefined;
  };
  const command = (key: ClassicKey): string[] | undefined => {
    const v = get(key);
    if (v === undefined) return undefined;
    const r = splitCommand(v);
    if (typeof r === 'string') {
      bad(key, r);
      return undefined;
    }
    return r;
  };

  spec.tcp.mode = options.modes.tcp;
  spec.udp.mode = options.modes.udp;
  for (const proto of ['tcp', 'udp'] as const) {
    const P = proto.toUpperCase() as 'TCP' | 'UDP';
    const list = ports(`${P}_PORTS`);
    if (list) spec[proto].ports = list;
    const limit = number(`ADVANCED_PORTS_${P}`, 1, 65535, 'a port number');
    if (limit !== undefined) spec[proto].advancedLimit = limit;
    const exclude = ports(`ADVANCED_EXCLUDE_${P}`);
    if (exclude) spec[proto].exclude = exclude;
    // PortSentry read an absent BLOCK_* as 0 (alert only), not as our default.
    const block = flagOf(`BLOCK_${P}`, ['0', '1', '2']) ?? 0;
    spec.response[proto] = BLOCK_ACTIONS[block]!;
  }

  const history = get('HISTORY_FILE');
  if (history !== undefined) spec.files.history = history;
  const blocked = get('BLOCKED_FILE');
  if (blocked !== undefined) spec.files.blocked = blocked;
  const resolve = flagOf('RESOLVE_HOST', ['0', '1']);
  if (resolve !== undefined) spec.response.resolveHosts = resolve === 1;
  const trigger = number('SCAN_TRIGGER', 0, 255, 'a whole number');
  if (trigger !== undefined) spec.trigger.count = trigger;
  const banner = conf.settings.PORT_BANNER?.value;
  if (banner) spec.response.banner = banner;

  // PortSentry had no firewall set: blocking meant exactly the KILL_* actions.
  spec.response.firewall = 'none';
  const route = command('KILL_ROUTE');
  if (route) spec.response.route = { enabled: true, command: route };
  const deny = get('KILL_HOSTS_DENY');
  if (deny !== undefined) spec.response.hostsDeny = { enabled: true, path: '/etc/hosts.deny', line: deny };
  const run = command('KILL_RUN_CMD');
  if (run) spec.response.command = run;
  const first = flagOf('KILL_RUN_CMD_FIRST', ['0', '1']);
  if (first !== undefined) spec.response.runCommandFirst = first === 1;

  const ignore = spec.ignore.map(canonicalCidr);
  for (const entry of options.ignoreEntries ?? []) {
    const c = canonicalCidr(entry);
    if (!ignore.includes(c)) ignore.push(c);
  }
  spec.ignore = ignore;

  if (problems.length) throw new ClassicConfError(problems);

  if (options.ignoreFileMissing) {
    const s = conf.settings.IGNORE_FILE;
    const where = s && s.value.trim() ? `IGNORE_FILE ${JSON.stringify(s.value)} (${conf.file}:${s.line})` : 'the ignore file';
    warnings.push(`${where} was not found; only the default ignore list applies: ${spec.ignore.join(', ')}`);
  }
  const blocking = (['tcp', 'udp'] as const).filter((p) => spec.response[p] === 'block');
  if (blocking.length)
    warnings.push(
      `PortSentry's blocks were permanent; kube-portsentry lifts each ${blocking.map((p) => p.toUpperCase()).join(' and ')} ` +
        `block after response.duration (${spec.response.duration}). ` +
        'Convert this file to a YAML policy and raise response.duration to keep blocks longer.',
    );

  const result = validateDocument(policy);
  if (!result.ok) throw new ClassicConfError(result.problems.map((p) => problemFor(conf, p)));
  return { policy: result.value, warnings };
}
