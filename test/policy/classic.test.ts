// Classic portsentry.conf support: Debian's real file, a 1.2-era file of our own, every
// error path, the ignore file, the mode flags, YAML output, and fuzzing of the parser.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import {
  CLASSIC_KEYS,
  ClassicConfError,
  classicToPolicy,
  parseClassicConf,
  parseClassicModeFlags,
  parseIgnoreFile,
  type ClassicConf,
} from '../../src/policy/classic.js';
import { splitCommand } from '../../src/policy/command-words.js';
import { defaultPolicy } from '../../src/policy/default.js';
import { parsePolicyYaml } from '../../src/policy/load.js';
import { DEBIAN_TCP_PORTS, DEBIAN_UDP_PORTS } from '../../src/policy/spec-schema.js';
import type { DetectMode, PolicyDocument } from '../../src/policy/types.js';
import { renderPolicyYaml } from '../../src/policy/yaml.js';
import { debianPortsentry } from '../../support/debian-portsentry.js';

/** The repository root, found from this file whether it runs from src or compiled output. */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('package.json not found above the test file');
    dir = up;
  }
  return dir;
}

const FIXTURES = path.join(repoRoot(), 'test/fixtures/classic');
const fixture = (name: string): string => readFileSync(path.join(FIXTURES, name), 'utf8');

const debian = await debianPortsentry();
const debianSkip = 'skip' in debian ? debian.skip : false;
const debianFile = (rel: string): string => {
  if (!('root' in debian)) throw new Error('Debian package not available');
  return readFileSync(path.join(debian.root, rel), 'utf8');
};

const BIND: { tcp: DetectMode; udp: DetectMode } = { tcp: 'bind', udp: 'bind' };

/** Runs `fn`, which must throw a ClassicConfError, and returns it. */
function classicError(fn: () => unknown): ClassicConfError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ClassicConfError) return err;
    throw err;
  }
  assert.fail('expected a ClassicConfError');
}

/** Converts classic text straight to a policy. */
function convert(text: string, modes = BIND): { policy: PolicyDocument; warnings: string[] } {
  return classicToPolicy(parseClassicConf(text, 'portsentry.conf'), { modes });
}

/** The first uncommented KEY="value" of each key, read by the simplest rule that fits Debian's file. */
function naiveSettings(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([A-Z_]+)\s*=\s*"([^"]*)"\s*$/.exec(line);
    if (m && !out.has(m[1]!)) out.set(m[1]!, m[2]!);
  }
  return out;
}

const numbers = (list: string | undefined): number[] => (list ?? '').split(',').map(Number);

describe("Debian's portsentry package", { skip: debianSkip }, () => {
  test('its portsentry.conf converts to the policy the file describes', () => {
    const text = debianFile('etc/portsentry/portsentry.conf');
    const file = '/etc/portsentry/portsentry.conf';
    const conf = parseClassicConf(text, file);
    const ignoreEntries = parseIgnoreFile(debianFile('etc/portsentry/portsentry.ignore.static'), 'portsentry.ignore.static');
    const { policy, warnings } = classicToPolicy(conf, { modes: BIND, ignoreEntries });
    const want = naiveSettings(text);
    const spec = policy.spec;

    assert.deepEqual(spec.tcp.ports, numbers(want.get('TCP_PORTS')));
    assert.deepEqual(spec.udp.ports, numbers(want.get('UDP_PORTS')));
    // The built-in defaults claim to be Debian's lists; the package is the judge.
    assert.deepEqual(spec.tcp.ports, DEBIAN_TCP_PORTS);
    assert.deepEqual(spec.udp.ports, DEBIAN_UDP_PORTS);
    assert.equal(spec.tcp.advancedLimit, Number(want.get('ADVANCED_PORTS_TCP')));
    assert.equal(spec.udp.advancedLimit, Number(want.get('ADVANCED_PORTS_UDP')));
    assert.deepEqual(spec.tcp.exclude, numbers(want.get('ADVANCED_EXCLUDE_TCP')));
    assert.deepEqual(spec.udp.exclude, numbers(want.get('ADVANCED_EXCLUDE_UDP')));
    assert.equal(spec.trigger.count, Number(want.get('SCAN_TRIGGER')));
    assert.equal(spec.files.history, want.get('HISTORY_FILE'));
    assert.equal(spec.files.blocked, want.get('BLOCKED_FILE'));
    assert.equal(conf.settings.IGNORE_FILE?.value, '/etc/portsentry/portsentry.ignore');
    // `RESOLVE_HOST = "0"`: spaces around "=" are Debian's own spelling.
    assert.equal(conf.settings.RESOLVE_HOST?.value, '0');
    assert.equal(spec.response.resolveHosts, false);
    const action = ['alert', 'block', 'command'];
    assert.equal(spec.response.tcp, action[Number(want.get('BLOCK_TCP'))]);
    assert.equal(spec.response.udp, action[Number(want.get('BLOCK_UDP'))]);
    assert.deepEqual(spec.response.route, {
      enabled: true,
      command: ['/sbin/route', 'add', '-host', '$TARGET$', 'reject'],
    });
    assert.deepEqual(spec.response.hostsDeny, {
      enabled: true,
      path: '/etc/hosts.deny',
      line: want.get('KILL_HOSTS_DENY'),
    });
    assert.equal(spec.response.hostsDeny.line, 'ALL: $TARGET$ : DENY');
    // KILL_RUN_CMD and PORT_BANNER are commented out in Debian's file.
    assert.deepEqual(spec.response.command, []);
    assert.equal(spec.response.runCommandFirst, false);
    assert.equal(spec.response.banner, '');
    assert.equal(spec.response.firewall, 'none');
    assert.deepEqual(spec.ignore, ['0.0.0.0/32', '127.0.0.0/8', '::/128', '::1/128', '127.0.0.1/32']);
    assert.deepEqual(conf.warnings, []);
    // BLOCK_TCP and BLOCK_UDP are 0: nothing is blocked, so nothing to say about durations.
    assert.deepEqual(warnings, []);
    assert.deepEqual(parsePolicyYaml(renderPolicyYaml(policy, ['from Debian']), 'x'), policy);
  });

  test('a missing ignore file is a warning naming IGNORE_FILE', () => {
    const conf = parseClassicConf(debianFile('etc/portsentry/portsentry.conf'), 'portsentry.conf');
    const { warnings } = classicToPolicy(conf, { modes: BIND, ignoreFileMissing: true });
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /IGNORE_FILE "\/etc\/portsentry\/portsentry.ignore" \(portsentry\.conf:\d+\) was not found/);
  });

  test('every key the converter knows is one the real binary reads, and the file uses no other', () => {
    const binary = readFileSync(path.join((debian as { root: string }).root, 'usr/sbin/portsentry')).toString('latin1');
    for (const key of CLASSIC_KEYS) assert.ok(binary.includes(key), `${key} is not in Debian's portsentry binary`);
    const text = debianFile('etc/portsentry/portsentry.conf');
    const used = new Set([...text.matchAll(/^#?\s*([A-Z][A-Z_]+)\s*=\s*"/gm)].map((m) => m[1]!));
    assert.ok(used.size >= 15);
    for (const key of used) assert.ok((CLASSIC_KEYS as readonly string[]).includes(key), `${key} is unknown`);
  });

  test('each commented-out example in the file, uncommented, parses or is refused for its shell syntax', () => {
    const text = debianFile('etc/portsentry/portsentry.conf');
    const examples = [...text.matchAll(/^#\s*([A-Z][A-Z_]+\s*=\s*".*)$/gm)].map((m) => m[1]!);
    assert.ok(examples.length >= 10);
    let refused = 0;
    for (const line of examples) {
      try {
        const conf = parseClassicConf(line, 'example.conf');
        assert.equal(Object.keys(conf.settings).length, 1, line);
      } catch (err) {
        assert.ok(err instanceof ClassicConfError, line);
        assert.equal(err.key, 'KILL_ROUTE', line);
        assert.match(err.message, /^example\.conf:1: KILL_ROUTE: uses shell syntax "(&&|\|)"; .*without a shell/);
        refused++;
      }
    }
    // The iptables "&&" example and the ipf pipeline need a shell.
    assert.ok(refused >= 2);
  });
});

describe('a PortSentry 1.2 configuration', () => {
  const text = fixture('portsentry-1.2.conf');
  const ignoreEntries = parseIgnoreFile(fixture('portsentry.ignore'), 'portsentry.ignore');

  test('the fixture really has CRLF line endings', () => {
    assert.ok(text.includes('\r\n'));
    assert.ok(!/[^\r]\n/.test(text));
  });

  test('every key maps to its policy field', () => {
    const modes = parseClassicModeFlags(['-stcp', '-audp']);
    assert.ok(typeof modes !== 'string');
    const conf = parseClassicConf(text, 'portsentry.conf');
    assert.deepEqual(Object.keys(conf.settings).sort(), [...CLASSIC_KEYS].sort());
    const { policy, warnings } = classicToPolicy(conf, { modes, ignoreEntries });
    const d = defaultPolicy().spec;
    assert.deepEqual(policy, {
      apiVersion: 'kube-portsentry.io/v1alpha1',
      kind: 'PortSentryPolicy',
      metadata: { name: 'default' },
      spec: {
        nodeSelector: d.nodeSelector,
        priority: d.priority,
        tcp: {
          mode: 'stealth',
          ports: [1, 11, 15, 79, 111, 119, 143, 540, 635, 1080, 1524, 2000, '6000-6063', 12345, 31337],
          advancedLimit: 2048,
          exclude: [113, 139, 631],
        },
        udp: {
          mode: 'advanced',
          ports: [1, 7, 9, 69, 161, 162, 513, 635, 640, 700, 31337],
          advancedLimit: 1024,
          exclude: [520, 138, 137, 67],
        },
        trigger: { ...d.trigger, count: 2 },
        ignore: [
          '0.0.0.0/32',
          '127.0.0.0/8',
          '::/128',
          '::1/128',
          '127.0.0.1/32',
          '192.168.10.0/24',
          '10.1.0.0/16',
          '172.16.5.9/32',
          '2001:db8:42::/48',
          'fe80::1/128',
          '198.51.100.7/32',
        ],
        response: {
          ...d.response,
          tcp: 'block',
          udp: 'block',
          firewall: 'none',
          route: { enabled: true, command: ['/sbin/iptables', '-I', 'INPUT', '-s', '$TARGET$', '-j', 'DROP'] },
          hostsDeny: { enabled: true, path: '/etc/hosts.deny', line: 'ALL: $TARGET$ : DENY' },
          command: ['/usr/local/bin/page-oncall', '--host', '$TARGET$', '--port', '$PORT$', '--mode', '$MODE$', 'port scan'],
          runCommandFirst: true,
          banner: '** Authorized use only: this attempt was logged (policy #7; ask root@example.org). **',
          resolveHosts: true,
        },
        files: {
          history: '/usr/local/psionic/portsentry/portsentry.history',
          blocked: '/usr/local/psionic/portsentry/portsentry.blocked',
        },
      },
    });
    assert.equal(conf.settings.IGNORE_FILE?.value, '/usr/local/psionic/portsentry/portsentry.ignore');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /permanent.*TCP and UDP block after response\.duration \(1h\)/);
  });

  test('line numbers count CRLF lines once, and LF or tab-indented copies mean the same', () => {
    const crlf = parseClassicConf(text, 'a');
    assert.equal(crlf.settings.SCAN_TRIGGER?.line, text.split('\r\n').findIndex((l) => l.startsWith('SCAN_TRIGGER')) + 1);
    const lfText = text.replaceAll('\r\n', '\n');
    const lf = parseClassicConf(lfText, 'a');
    const tabbed = parseClassicConf(lfText.replace(/^/gm, '\t  '), 'a');
    assert.deepEqual(lf, crlf);
    assert.deepEqual(tabbed, crlf);
  });

  test('the converted policy survives a YAML round trip and reads well', () => {
    const { policy } = classicToPolicy(parseClassicConf(text, 'portsentry.conf'), { modes: BIND, ignoreEntries });
    const yaml = renderPolicyYaml(policy, ['Converted from portsentry.conf', '', 'Review before use.']);
    assert.ok(yaml.startsWith('# Converted from portsentry.conf\n#\n# Review before use.\n\napiVersion: '), yaml);
    assert.match(yaml, /ports: \[1, 11, 15, 79,/);
    assert.match(yaml, /command: \[\/sbin\/iptables, -I, INPUT/);
    assert.deepEqual(parsePolicyYaml(yaml, 'x'), policy);
    assert.deepEqual(parsePolicyYaml(renderPolicyYaml(policy, []), 'x'), policy);
    assert.deepEqual(parsePolicyYaml(renderPolicyYaml(defaultPolicy(), []), 'x'), defaultPolicy());
  });
});

describe('reading portsentry.conf', () => {
  test('the spellings PortSentry users wrote', () => {
    const conf = parseClassicConf(
      [
        'BLOCK_TCP="1"',
        'BLOCK_UDP = "2"',
        "KILL_RUN_CMD='/bin/echo \"$TARGET$ # not a comment\"'",
        'SCAN_TRIGGER=3 # a trailing comment',
        '   RESOLVE_HOST\t=\t"1"\t# tabs',
        'PORT_BANNER=   "  padded  "',
        'HISTORY_FILE=',
        'BLOCKED_FILE=# nothing but a comment',
        '# BLOCK_TCP="2" commented out',
        '   # an indented comment',
        '',
        '\t',
      ].join('\n'),
      'p.conf',
    );
    const values = Object.fromEntries(Object.entries(conf.settings).map(([k, s]) => [k, s.value]));
    assert.deepEqual(values, {
      BLOCK_TCP: '1',
      BLOCK_UDP: '2',
      KILL_RUN_CMD: '/bin/echo "$TARGET$ # not a comment"',
      SCAN_TRIGGER: '3',
      RESOLVE_HOST: '1',
      PORT_BANNER: '  padded  ',
      HISTORY_FILE: '',
      BLOCKED_FILE: '',
    });
    assert.equal(conf.settings.RESOLVE_HOST?.line, 5);
  });

  test('a duplicate key: the first wins and the later one is a warning', () => {
    const conf = parseClassicConf('BLOCK_TCP="1"\n\nBLOCK_TCP="0"\nBLOCK_TCP="junk"\n', 'p.conf');
    assert.deepEqual(conf.settings.BLOCK_TCP, { value: '1', line: 1 });
    assert.equal(conf.warnings.length, 2);
    assert.match(conf.warnings[0]!, /^p\.conf:3: BLOCK_TCP: duplicate key ignored; the first one \(line 1\) applies/);
    const { warnings } = classicToPolicy(conf, { modes: BIND });
    assert.deepEqual(warnings.slice(0, 2), conf.warnings);
  });

  test('an empty value means not set', () => {
    const { policy } = convert('KILL_RUN_CMD=""\nKILL_ROUTE=""\nKILL_HOSTS_DENY=""\nTCP_PORTS=""\nBLOCK_TCP=""\nPORT_BANNER=""\n');
    const d = defaultPolicy().spec;
    assert.deepEqual(policy.spec.response.command, []);
    assert.deepEqual(policy.spec.response.route, d.response.route);
    assert.deepEqual(policy.spec.response.hostsDeny, d.response.hostsDeny);
    assert.deepEqual(policy.spec.tcp.ports, d.tcp.ports);
    assert.equal(policy.spec.response.banner, '');
    assert.equal(policy.spec.response.tcp, 'alert');
  });

  test('an absent BLOCK_TCP or BLOCK_UDP alerts only, as PortSentry did', () => {
    const { policy, warnings } = convert('SCAN_TRIGGER="1"\n');
    assert.equal(policy.spec.response.tcp, 'alert');
    assert.equal(policy.spec.response.udp, 'alert');
    assert.equal(policy.spec.response.firewall, 'none');
    assert.deepEqual(warnings, []);
  });

  test('BLOCK_TCP="2" runs the command only', () => {
    const { policy } = convert('BLOCK_TCP="2"\nKILL_RUN_CMD="/usr/local/sbin/on-scan $TARGET$ $PORT$"\n');
    assert.equal(policy.spec.response.tcp, 'command');
    assert.deepEqual(policy.spec.response.command, ['/usr/local/sbin/on-scan', '$TARGET$', '$PORT$']);
  });
});

describe('errors name the file, the line and the key', () => {
  const cases: { name: string; text: string; line: number; key: string; message: RegExp }[] = [
    { name: 'unknown key', text: '# c\n\nBLOCK_ICMP="1"\n', line: 3, key: 'BLOCK_ICMP', message: /unknown key/ },
    { name: 'no "="', text: 'BLOCK_TCP="1"\nTCP_PORTS "1,2"\n', line: 2, key: 'TCP_PORTS', message: /expected "="/ },
    { name: 'not a key at all', text: '\n"1,2"\n', line: 2, key: '', message: /expected KEY="value"/ },
    { name: 'unterminated quote', text: 'KILL_HOSTS_DENY="ALL: $TARGET$\n', line: 1, key: 'KILL_HOSTS_DENY', message: /unterminated " quote/ },
    { name: 'garbage after the value', text: 'BLOCK_UDP="1" yes\n', line: 1, key: 'BLOCK_UDP', message: /unexpected text after the value: "yes"/ },
    { name: 'unquoted spaces', text: 'PORT_BANNER=go away\n', line: 1, key: 'PORT_BANNER', message: /quote a value that contains spaces/ },
    { name: 'bad BLOCK value', text: '\n\nBLOCK_TCP="3"\n', line: 3, key: 'BLOCK_TCP', message: /^must be 0, 1 or 2, got "3"$/ },
    { name: 'negative trigger', text: 'SCAN_TRIGGER="-1"\n', line: 1, key: 'SCAN_TRIGGER', message: /must be a whole number from 0 to 255, got "-1"/ },
    { name: 'trigger beyond what a source can record', text: 'SCAN_TRIGGER="256"\n', line: 1, key: 'SCAN_TRIGGER', message: /must be a whole number from 0 to 255, got "256"/ },
    { name: 'trigger not a number', text: 'SCAN_TRIGGER="two"\n', line: 1, key: 'SCAN_TRIGGER', message: /got "two"/ },
    { name: 'reversed range', text: 'TCP_PORTS="1,80-70,143"\n', line: 1, key: 'TCP_PORTS', message: /range "80-70" is reversed/ },
    { name: 'port out of range', text: 'UDP_PORTS="1,70000"\n', line: 1, key: 'UDP_PORTS', message: /70000 is not between 1 and 65535/ },
    { name: 'bad exclude', text: 'ADVANCED_EXCLUDE_TCP="113,ident"\n', line: 1, key: 'ADVANCED_EXCLUDE_TCP', message: /"ident" is not a port/ },
    { name: 'advanced limit 0', text: 'ADVANCED_PORTS_TCP="0"\n', line: 1, key: 'ADVANCED_PORTS_TCP', message: /from 1 to 65535, got "0"/ },
    { name: 'advanced limit too big', text: 'ADVANCED_PORTS_UDP="65536"\n', line: 1, key: 'ADVANCED_PORTS_UDP', message: /from 1 to 65535/ },
    { name: 'RESOLVE_HOST not 0/1', text: 'RESOLVE_HOST="2"\n', line: 1, key: 'RESOLVE_HOST', message: /must be 0 or 1, got "2"/ },
    { name: 'KILL_RUN_CMD_FIRST not 0/1', text: 'KILL_RUN_CMD_FIRST="yes"\n', line: 1, key: 'KILL_RUN_CMD_FIRST', message: /must be 0 or 1/ },
    {
      name: 'shell operators in KILL_RUN_CMD',
      text: 'KILL_RUN_CMD="/usr/bin/logger $TARGET$ && /sbin/shutdown -h now"\n',
      line: 1,
      key: 'KILL_RUN_CMD',
      message: /uses shell syntax "&&"; kube-portsentry runs commands without a shell: put the pipeline in a script/,
    },
    {
      name: 'a pipe in KILL_ROUTE',
      text: "KILL_ROUTE=\"/bin/echo 'block in from $TARGET$' | /sbin/ipf -f -\"\n",
      line: 1,
      key: 'KILL_ROUTE',
      message: /uses shell syntax "\|"/,
    },
    { name: 'KILL_ROUTE without $TARGET$', text: 'KILL_ROUTE="/sbin/route add default"\n', line: 1, key: 'KILL_ROUTE', message: /must contain \$TARGET\$/ },
    { name: 'hosts.deny without $TARGET$', text: 'KILL_HOSTS_DENY="ALL: ALL"\n', line: 1, key: 'KILL_HOSTS_DENY', message: /must contain \$TARGET\$/ },
    { name: 'control character', text: 'PORT_BANNER="bell\u0007"\n', line: 1, key: 'PORT_BANNER', message: /control character/ },
  ];
  for (const c of cases)
    test(c.name, () => {
      const err = classicError(() => parseClassicConf(c.text, 'portsentry.conf'));
      assert.equal(err.problems.length, 1, err.message);
      assert.equal(err.file, 'portsentry.conf');
      assert.equal(err.line, c.line);
      assert.equal(err.key, c.key);
      assert.match(err.problems[0]!.message, c.message);
      assert.ok(err.message.startsWith(`portsentry.conf:${c.line}: ${c.key ? `${c.key}: ` : ''}`), err.message);
    });

  test('the exact message format', () => {
    const err = classicError(() => parseClassicConf('\n'.repeat(41) + 'BLOCK_TCP="3"\n', 'portsentry.conf'));
    assert.equal(err.message, 'portsentry.conf:42: BLOCK_TCP: must be 0, 1 or 2, got "3"');
    assert.equal(err.name, 'ClassicConfError');
    assert.ok(err instanceof Error);
  });

  test('every problem in the file is reported at once', () => {
    const text = [
      'TCP_PORTS="1,2,3"',
      'BLOCK_TCP="5"',
      'FOO="bar"',
      'UDP_PORTS="9-1,0"',
      'KILL_RUN_CMD="a;b"',
      'SCAN_TRIGGER="-2"',
      'nonsense',
    ].join('\r\n');
    const err = classicError(() => parseClassicConf(text, '/etc/portsentry/portsentry.conf'));
    assert.deepEqual(
      err.problems.map((p) => [p.line, p.key]),
      [
        [2, 'BLOCK_TCP'],
        [3, 'FOO'],
        [4, 'UDP_PORTS'],
        [4, 'UDP_PORTS'],
        [5, 'KILL_RUN_CMD'],
        [6, 'SCAN_TRIGGER'],
        [7, 'nonsense'],
      ],
    );
    const lines = err.message.split('\n');
    assert.equal(lines.length, 7);
    for (const [i, p] of err.problems.entries())
      assert.ok(lines[i]!.startsWith(`/etc/portsentry/portsentry.conf:${p.line}: ${p.key}: `), lines[i]);
  });

  test('a policy the classic file cannot express names the key responsible', () => {
    let err = classicError(() => convert('\nBLOCK_TCP="2"\n'));
    assert.equal(err.message, 'portsentry.conf:2: BLOCK_TCP: is 2 (run KILL_RUN_CMD only) but KILL_RUN_CMD is not set');
    err = classicError(() => convert('BLOCK_TCP="2"\nBLOCK_UDP="2"\nKILL_RUN_CMD_FIRST="1"\n'));
    assert.deepEqual(
      err.problems.map((p) => [p.line, p.key]),
      [
        [1, 'BLOCK_TCP'],
        [2, 'BLOCK_UDP'],
        [3, 'KILL_RUN_CMD_FIRST'],
      ],
    );
    err = classicError(() => convert('\n\nKILL_RUN_CMD="/bin/notify $HOST$"\n'));
    assert.equal(err.key, 'KILL_RUN_CMD');
    assert.equal(err.line, 3);
    assert.match(err.message, /unknown variable \$HOST\$/);
    err = classicError(() => convert('KILL_ROUTE="$TARGET$ reject"\n'));
    assert.equal(err.key, 'KILL_ROUTE');
    assert.match(err.message, /program \(first element\) cannot contain a variable/);
    err = classicError(() => convert(`PORT_BANNER="${'x'.repeat(1025)}"\n`));
    assert.equal(err.key, 'PORT_BANNER');
    err = classicToPolicyError(['10.0.0.0/99']);
    assert.equal(err.key, 'IGNORE_FILE');
  });
});

function classicToPolicyError(ignoreEntries: string[]): ClassicConfError {
  const conf = parseClassicConf('IGNORE_FILE="/etc/ignore"\n', 'p.conf');
  return classicError(() => classicToPolicy(conf, { modes: BIND, ignoreEntries }));
}

describe('splitCommand', () => {
  test('splits words like a shell and keeps $VARIABLES$', () => {
    const cases: [string, string[]][] = [
      ['/sbin/route add -host $TARGET$ reject', ['/sbin/route', 'add', '-host', '$TARGET$', 'reject']],
      ['  /bin/x\t a   b ', ['/bin/x', 'a', 'b']],
      [`/bin/logger -t portsentry "scan from $TARGET$ port $PORT$"`, ['/bin/logger', '-t', 'portsentry', 'scan from $TARGET$ port $PORT$']],
      [`/bin/x 'single $HOME "quoted"' "double 'quoted'"`, ['/bin/x', 'single $HOME "quoted"', "double 'quoted'"]],
      ['/bin/x a\\ b \\"c\\" "d\\"e" \'f\\g\'', ['/bin/x', 'a b', '"c"', 'd"e', 'f\\g']],
      ['/bin/x "" \'\' a""b', ['/bin/x', '', '', 'ab']],
      ['/bin/x $TARGET$/32 $PORT$$MODE$ cost$5', ['/bin/x', '$TARGET$/32', '$PORT$$MODE$', 'cost$5']],
      ["/bin/x '$(date)' '`id`' '|;&' \\| a#b", ['/bin/x', '$(date)', '`id`', '|;&', '|', 'a#b']],
      ['', []],
    ];
    for (const [input, argv] of cases) assert.deepEqual(splitCommand(input), argv, input);
  });

  test('refuses what only a shell can do', () => {
    const cases: [string, RegExp][] = [
      ['/bin/a | /bin/b', /shell syntax "\|"/],
      ['/bin/a || /bin/b', /shell syntax "\|\|"/],
      ['/bin/a && /bin/b', /shell syntax "&&"/],
      ['/bin/a; /bin/b', /shell syntax ";"/],
      ['/bin/a > /tmp/log', /shell syntax ">"/],
      ['/bin/a >> /tmp/log', /shell syntax ">>"/],
      ['/bin/a < /etc/passwd', /shell syntax "<"/],
      ['/bin/a &', /shell syntax "&"/],
      ['/bin/a `id`', /shell syntax "`"/],
      ['/bin/a "`id`"', /shell syntax "`"/],
      ['/bin/a $(id)', /shell syntax "\$\("/],
      ['/bin/a "$(id)"', /shell syntax "\$\("/],
      ['(/bin/a)', /shell syntax "\("/],
      ['/bin/a $HOME', /shell variable "\$HOME"/],
      ['/bin/a ${TARGET}', /shell variable "\$\{TARGET\}"/],
      ['/bin/a $TARGET', /shell variable "\$TARGET"/],
      ['/bin/a # comment', /shell comment/],
      ['/bin/a "unterminated', /unterminated " quote/],
      ["/bin/a 'unterminated", /unterminated ' quote/],
      ['/bin/a trailing\\', /backslash/],
    ];
    for (const [input, message] of cases) {
      const r = splitCommand(input);
      assert.equal(typeof r, 'string', input);
      assert.match(r as string, message, input);
    }
    assert.match(splitCommand('/bin/a && /bin/b') as string, /without a shell: put the pipeline in a script and name the script/);
  });
});

describe('the ignore file', () => {
  test('addresses, /bits, dotted netmasks, IPv6, comments', () => {
    assert.deepEqual(parseIgnoreFile(fixture('portsentry.ignore'), 'portsentry.ignore'), [
      '127.0.0.1/32',
      '0.0.0.0/32',
      '192.168.10.0/24',
      '10.1.0.0/16',
      '172.16.5.9/32',
      '2001:db8:42::/48',
      'fe80::1/128',
      '198.51.100.7/32',
    ]);
    assert.deepEqual(parseIgnoreFile('10.0.0.0/255.255.255.255\r\n10.9.0.0/0.0.0.0\r\n', 'f'), ['10.0.0.0/32', '0.0.0.0/0']);
    assert.deepEqual(parseIgnoreFile('', 'f'), []);
  });

  test('bad lines are all reported with file and line', () => {
    const err = classicError(() =>
      parseIgnoreFile(
        [
          '# ok',
          '10.0.0.1',
          'not-an-address',
          '10.0.0.0/33',
          '10.0.0.0/255.0.255.0',
          '2001:db8::/255.255.0.0',
          '10.0.0.1 10.0.0.2',
          '10.0.0.0/300.0.0.0',
          'host.example.org',
        ].join('\n'),
        'portsentry.ignore',
      ),
    );
    assert.deepEqual(
      err.problems.map((p) => p.line),
      [3, 4, 5, 6, 7, 8, 9],
    );
    assert.equal(err.file, 'portsentry.ignore');
    assert.match(err.problems[2]!.message, /netmask 255\.0\.255\.0 is not contiguous/);
    assert.match(err.problems[3]!.message, /dotted netmask needs an IPv4 address/);
    assert.match(err.problems[4]!.message, /one address or CIDR per line/);
    assert.ok(err.message.startsWith('portsentry.ignore:3: "not-an-address" is not an IP address'), err.message);
  });
});

describe('classic mode flags', () => {
  test('map to detection modes', () => {
    assert.deepEqual(parseClassicModeFlags([]), { tcp: 'bind', udp: 'bind' });
    assert.deepEqual(parseClassicModeFlags(['-tcp', '-udp']), { tcp: 'bind', udp: 'bind' });
    assert.deepEqual(parseClassicModeFlags(['-tcp']), { tcp: 'bind', udp: 'off' });
    assert.deepEqual(parseClassicModeFlags(['-sudp']), { tcp: 'off', udp: 'stealth' });
    assert.deepEqual(parseClassicModeFlags(['-stcp', '-udp']), { tcp: 'stealth', udp: 'bind' });
    assert.deepEqual(parseClassicModeFlags(['-audp', '-atcp']), { tcp: 'advanced', udp: 'advanced' });
  });

  test('two for one protocol, or an unknown flag, is an error', () => {
    assert.match(parseClassicModeFlags(['-tcp', '-stcp']) as string, /-tcp and -stcp both set the TCP mode/);
    assert.match(parseClassicModeFlags(['-udp', '-udp']) as string, /both set the UDP mode/);
    assert.match(parseClassicModeFlags(['-icmp']) as string, /unknown flag "-icmp"/);
    assert.match(parseClassicModeFlags(['tcp']) as string, /unknown flag "tcp"/);
    assert.match(parseClassicModeFlags(['-constructor']) as string, /unknown flag/);
  });
});

describe('YAML rendering', () => {
  test('round trips arbitrary banners, commands and ports', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary-ascii', maxLength: 200 }),
        fc.string({ unit: 'grapheme', maxLength: 100 }),
        fc.array(fc.string({ unit: 'grapheme-ascii', maxLength: 20 }), { maxLength: 5 }),
        fc.array(fc.oneof(fc.integer({ min: 1, max: 65535 }), fc.constant('6000-6063')), { maxLength: 30 }),
        (banner, line, args, ports) => {
          const doc = defaultPolicy();
          doc.spec.response.banner = banner;
          doc.spec.response.hostsDeny.line = `ALL: $TARGET$ ${line.replace(/[\r\n$]/g, '')}`;
          doc.spec.response.command = ['/bin/x', ...args.map((a) => a.replace(/\$/g, ''))];
          doc.spec.tcp.ports = ports;
          assert.deepEqual(parsePolicyYaml(renderPolicyYaml(doc, [banner.replace(/[\r\n]/g, ' ')]), 'x'), doc);
        },
      ),
      { numRuns: 300, interruptAfterTimeLimit: 3000 },
    );
  });
});

describe('fuzzing', () => {
  /** The only failure parse (and conversion) may have is a well-formed ClassicConfError. */
  function onlyClassicErrors(text: string): void {
    const lineCount = text.split(/\r\n|\n|\r/).length;
    let conf: ClassicConf;
    try {
      conf = parseClassicConf(text, 'fuzz.conf');
    } catch (err) {
      if (!(err instanceof ClassicConfError)) throw err;
      assert.ok(err.problems.length > 0);
      for (const p of err.problems) {
        assert.equal(p.file, 'fuzz.conf');
        assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lineCount, `line ${p.line} of ${lineCount}`);
      }
      return;
    }
    try {
      classicToPolicy(conf, { modes: BIND });
    } catch (err) {
      if (!(err instanceof ClassicConfError)) throw err;
    }
  }

  const interesting = fc.constantFrom(...'"\'#= \t\r\n$|&;-,0123456789\\`(){}ABC_/'.split(''));
  const lineEdit = (lines: string[]) =>
    fc.array(
      fc.record({
        at: fc.nat(),
        op: fc.constantFrom('insert-char', 'delete-char', 'replace-line', 'duplicate-line', 'drop-line'),
        ch: fc.oneof(interesting, fc.string({ unit: 'binary', minLength: 1, maxLength: 3 })),
        pos: fc.nat(),
        text: fc.string({ unit: 'binary-ascii', maxLength: 60 }),
      }),
      { minLength: 1, maxLength: 8 },
    ).map((edits) => {
      const out = [...lines];
      for (const e of edits) {
        if (out.length === 0) break;
        const i = e.at % out.length;
        const l = out[i]!;
        const p = e.pos % (l.length + 1);
        if (e.op === 'insert-char') out[i] = l.slice(0, p) + e.ch + l.slice(p);
        else if (e.op === 'delete-char') out[i] = l.slice(0, p) + l.slice(p + 1);
        else if (e.op === 'replace-line') out[i] = e.text;
        else if (e.op === 'duplicate-line') out.splice(i, 0, l);
        else out.splice(i, 1);
      }
      return out.join('\n');
    });
  // Favour the lines that matter: the settings, not the comments.
  const settingLines = (text: string) => text.split(/\r?\n/).filter((l) => /^\s*[A-Z_]+\s*=/.test(l));

  test('random text only ever fails with ClassicConfError', () => {
    const keyish = fc
      .tuple(fc.constantFrom(...CLASSIC_KEYS, 'FOO', ''), fc.constantFrom('=', ' = ', '', '=='), fc.string({ unit: 'binary-ascii', maxLength: 40 }))
      .map(([k, eq, v]) => `${k}${eq}${v}`);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 400 }),
          fc.array(keyish, { maxLength: 20 }).map((ls) => ls.join('\n')),
        ),
        onlyClassicErrors,
      ),
      { numRuns: 3000, interruptAfterTimeLimit: 3000 },
    );
  });

  test('mutated lines of our 1.2 fixture only ever fail with ClassicConfError', () => {
    const lines = settingLines(fixture('portsentry-1.2.conf'));
    fc.assert(fc.property(lineEdit(lines), onlyClassicErrors), { numRuns: 3000, interruptAfterTimeLimit: 3000 });
  });

  test("mutated lines of Debian's file only ever fail with ClassicConfError", { skip: debianSkip }, () => {
    const text = debianFile('etc/portsentry/portsentry.conf');
    fc.assert(fc.property(lineEdit(settingLines(text)), onlyClassicErrors), {
      numRuns: 3000,
      interruptAfterTimeLimit: 3000,
    });
    fc.assert(fc.property(lineEdit(text.split('\n')), onlyClassicErrors), { numRuns: 500, interruptAfterTimeLimit: 2000 });
  });
});
