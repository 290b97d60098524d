// Fuzzing the classic portsentry.conf reader (src/policy/classic.ts, classic-load.ts),
// starting from Debian's real file and the fixtures: every input converts to a valid policy
// or is refused with a ClassicConfError whose every problem names the file and its line.
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { loadClassicFile } from '../../src/policy/classic-load.js';
import { CLASSIC_KEYS, ClassicConfError, classicToPolicy, parseClassicConf, parseIgnoreFile } from '../../src/policy/classic.js';
import { validateDocument } from '../../src/policy/validate.js';
import { debianPortsentry } from '../../support/debian-portsentry.js';
import { HOSTILE_TOKENS, fuzz, mutatedText } from '../../support/fuzz.js';

const FIXTURES = new URL('../../../test/fixtures/classic/', import.meta.url);
const FILE = '/etc/portsentry/fuzz.conf';
const MODES = [
  { tcp: 'bind', udp: 'bind' },
  { tcp: 'stealth', udp: 'stealth' },
  { tcp: 'advanced', udp: 'off' },
  { tcp: 'off', udp: 'advanced' },
] as const;

function checkRefusal(err: unknown, file: string, text: string): void {
  assert.ok(err instanceof ClassicConfError, `not a ClassicConfError: ${(err as Error)?.stack ?? String(err)}`);
  const lines = text.split(/\r\n|\n|\r/).length;
  assert.ok(err.problems.length > 0);
  for (const p of err.problems) {
    assert.equal(p.file, file);
    assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines, `${p.key || '(no key)'}: ${p.message}: line ${p.line} is not a line of the ${lines}-line file`);
    assert.ok(p.message.length > 0 && !/undefined|\[object Object\]/.test(p.message.replace(/"[^"]*"/g, '')), `unclear message: ${p.message}`);
    if (p.key) assert.ok((CLASSIC_KEYS as readonly string[]).includes(p.key) || p.message.startsWith('unknown key') || p.message.startsWith('expected "="') || p.message.includes('quote') || p.message.includes('after the value') || p.message.includes('control character'), `key ${p.key}: ${p.message}`);
  }
  // The message lists each problem as file:line: so a person finds every one.
  for (const p of err.problems) assert.ok(err.message.includes(`${file}:${p.line}: `), `the message names ${file}:${p.line}`);
}

describe('fuzz: classic portsentry.conf', { concurrency: false }, () => {
  test("mutated Debian and PortSentry 1.2 files: a valid policy, or every problem at its file and line", async (t) => {
    const debian = await debianPortsentry();
    if ('skip' in debian) return t.skip(debian.skip);
    const corpus = [
      await readFile(join(debian.root, 'etc/portsentry/portsentry.conf'), 'utf8'),
      await readFile(new URL('portsentry-1.2.conf', FIXTURES), 'utf8'),
      // Every key with a value that reaches the converter's own checks.
      'TCP_PORTS="1,11"\nUDP_PORTS="7"\nBLOCK_TCP="2"\nBLOCK_UDP="1"\nKILL_RUN_CMD="/bin/logger $TARGET$ $PORT$ $MODE$"\nKILL_RUN_CMD_FIRST="1"\nSCAN_TRIGGER="0"\nRESOLVE_HOST="0"\nKILL_HOSTS_DENY="ALL: $TARGET$"\nKILL_ROUTE="/sbin/route add -host $TARGET$ reject"\nADVANCED_PORTS_TCP="1024"\nADVANCED_EXCLUDE_UDP="67"\n',
    ];
    const input = fc.tuple(mutatedText(corpus), fc.constantFrom(...MODES));
    await fuzz('classic conf', input, ([text, modes]) => {
      let result;
      try {
        result = classicToPolicy(parseClassicConf(text, FILE), { modes: { ...modes } });
      } catch (err) {
        checkRefusal(err, FILE, text);
        return;
      }
      const again = validateDocument(result.policy);
      assert.ok(again.ok, 'a converted policy is valid');
      assert.ok(result.warnings.every((w) => typeof w === 'string' && w.length > 0));
    });
  });

  test('random lines of KEY="value" with hostile values: a valid policy, or every problem at its line', async () => {
    const value = fc.oneof(fc.constantFrom(...HOSTILE_TOKENS), fc.string({ maxLength: 30 }), fc.constantFrom('1,2,3', '6000-6063', '0', '1', '2', '65536', '1-', '$TARGET$', '/bin/true $TARGET$'));
    const line = fc.oneof(
      fc.tuple(fc.constantFrom(...CLASSIC_KEYS, 'TCP_PORT', 'tcp_ports', ''), fc.constantFrom('=', ' = ', '=\t', ' '), fc.constantFrom('"', "'", ''), value).map(([k, eq, q, v]) => `${k}${eq}${q}${v}${q}`),
      fc.constantFrom('# comment', '', '   ', '\t# indented comment'),
      fc.string({ maxLength: 40 }),
    );
    await fuzz('classic lines', fc.tuple(fc.array(line, { maxLength: 20 }), fc.constantFrom(...MODES)), ([lines, modes]) => {
      const text = lines.join('\n');
      try {
        const { policy } = classicToPolicy(parseClassicConf(text, FILE), { modes: { ...modes } });
        assert.ok(validateDocument(policy).ok);
      } catch (err) {
        checkRefusal(err, FILE, text);
      }
    });
  });

  test('mutated ignore files: canonical CIDRs, or every problem at its file and line', async () => {
    const corpus = [
      await readFile(new URL('portsentry.ignore', FIXTURES), 'utf8'),
      '127.0.0.1/32\n0.0.0.0\n192.0.2.0/255.255.255.0\n2001:db8::/32\n::1 # loopback\n',
    ];
    await fuzz('classic ignore file', mutatedText(corpus), (text) => {
      let entries: string[];
      try {
        entries = parseIgnoreFile(text, '/etc/portsentry/portsentry.ignore');
      } catch (err) {
        checkRefusal(err, '/etc/portsentry/portsentry.ignore', text);
        return;
      }
      assert.equal(new Set(entries).size, entries.length, 'each entry once');
      // Every entry is fit for a policy's ignore list.
      const doc = validateDocument({ apiVersion: 'kube-portsentry.io/v1alpha1', kind: 'PortSentryPolicy', spec: { ignore: entries } });
      assert.ok(doc.ok, JSON.stringify(doc));
    });
  });

  test('through the files: the conf and the ignore file it names, both mutated', async (t) => {
    const debian = await debianPortsentry();
    if ('skip' in debian) return t.skip(debian.skip);
    const dir = await mkdtemp(join(tmpdir(), 'kps-classic-fuzz-'));
    try {
      const conf = join(dir, 'portsentry.conf');
      const ignore = join(dir, 'portsentry.ignore');
      const base = (await readFile(join(debian.root, 'etc/portsentry/portsentry.conf'), 'utf8')).replace(/^IGNORE_FILE=.*$/m, `IGNORE_FILE="${ignore}"`);
      const ignoreText = await readFile(new URL('portsentry.ignore', FIXTURES), 'utf8');
      await fuzz('classic files', fc.tuple(mutatedText([base]), mutatedText([ignoreText]), fc.constantFrom(['-tcp', '-udp'], ['-stcp', '-sudp'], ['-atcp'], ['-stcp', '-atcp'], ['-x'])), async ([confText, ignoreBody, flags]) => {
        await writeFile(conf, confText);
        await writeFile(ignore, ignoreBody);
        try {
          const { policy } = await loadClassicFile(conf, [...flags]);
          assert.ok(validateDocument(policy).ok);
        } catch (err) {
          assert.ok(err instanceof ClassicConfError, `not a ClassicConfError: ${(err as Error)?.stack ?? String(err)}`);
          for (const p of err.problems) {
            // Bad mode flags belong to no line of either file.
            if (p.line === 0) assert.match(p.message, /flag/);
            else checkRefusal(new ClassicConfError([p]), p.file, p.file === conf ? confText : ignoreBody);
          }
        }
      }, { minRuns: 20 });
      // An ignore file that exists but cannot be read (a directory) is the IGNORE_FILE line's problem.
      const dirConf = join(dir, 'directory.conf');
      await writeFile(dirConf, `TCP_PORTS="1"\nIGNORE_FILE="${dir}"\n`);
      await assert.rejects(loadClassicFile(dirConf, []), (err: Error) => {
        assert.ok(err instanceof ClassicConfError);
        assert.match(err.message, new RegExp(`^${dirConf}:2: IGNORE_FILE: cannot read ".*": EISDIR`));
        return true;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
