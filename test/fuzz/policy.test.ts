// Fuzzing the policy loader and validator (src/policy/load.ts, validate.ts, schema.ts,
// yaml.ts) with random and mutated YAML and JSON policies. A policy is either accepted (and
// then survives validation and a YAML round trip unchanged) or refused with a PolicyError
// whose every problem names its field path, and its line where YAML gives one.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { stringify } from 'yaml';
import { defaultPolicy } from '../../src/policy/default.js';
import { PolicyError, parsePolicyYaml } from '../../src/policy/load.js';
import type { Schema } from '../../src/policy/schema.js';
import { documentSchema } from '../../src/policy/spec-schema.js';
import { validateDocument, validateSpec } from '../../src/policy/validate.js';
import { renderPolicyYaml } from '../../src/policy/yaml.js';
import { HOSTILE_TOKENS, fuzz, mutatedText } from '../../support/fuzz.js';

const FILE = 'fuzz.yaml';
const TOP = ['apiVersion', 'kind', 'metadata', 'spec'];
/** Problems that concern the document as a whole, not one field. */
const DOCUMENT_LEVEL = /^(YAML syntax: |YAML cannot be read: |YAML cannot be read as data: |expected one YAML document|the file holds no YAML document|must be a map)/;
const UNCLEAR = /undefined|\[object Object\]/;

const header = 'apiVersion: kube-portsentry.io/v1alpha1\nkind: PortSentryPolicy\nmetadata:\n  name: edge\n';
const specs: unknown[] = [
  {},
  { tcp: { mode: 'bind', ports: [1, 11, 79, 111, '6000-6063'] }, udp: { mode: 'bind', ports: [7, 9, 69, 161] }, trigger: { count: 2, window: '10m' }, ignore: ['192.0.2.0/24', '2001:db8:42::/48'], response: { tcp: 'block', udp: 'alert', duration: '1h', firewall: 'auto', command: ['/usr/local/bin/notify-soc', '$TARGET$', '$PORT$', '$MODE$'] } },
  { tcp: { mode: 'advanced', advancedLimit: 2048, exclude: [113] }, udp: { mode: 'stealth', ports: [7, 9] } },
  { nodeSelector: { matchLabels: { role: 'edge' }, matchExpressions: [{ key: 'zone', operator: 'In', values: ['a', 'b'] }] }, priority: 10 },
  { response: { tcp: 'command', udp: 'command', command: ['/bin/notify', '$TARGET$', 'port=$PORT$'], runCommandFirst: true, route: { enabled: true }, hostsDeny: { enabled: true, line: 'ALL: $TARGET$' } } },
  { tcp: { mode: 'stealth', ports: [1, 11] }, trigger: { count: 0, maxTrackedSources: 2000 }, response: { kernelFastPath: true, firewall: 'nftables', maxBlocksPerMinute: 5 } },
];

async function corpus(): Promise<string[]> {
  const bundled = await readFile(new URL('../../../policies/default.yaml', import.meta.url), 'utf8');
  const docs = specs.map((spec) => ({ ...defaultPolicy(), metadata: { name: 'edge', labels: { team: 'sec' } }, spec }));
  return [
    bundled,
    ...specs.map((spec) => header + stringify({ spec })),
    ...docs.map((d) => JSON.stringify(d, null, 2)),
    renderPolicyYaml(defaultPolicy(), ['converted']),
  ];
}

/** Values close to what `schema` wants, the right type with wrong values, and wrong types. */
function near(schema: Schema, depth = 0): fc.Arbitrary<unknown> {
  const wrong = fc.oneof(fc.constantFrom(null, true, 0, -1, Infinity, -0, 2 ** 53 + 2, '', 'x'), fc.constantFrom(...HOSTILE_TOKENS), fc.anything({ maxDepth: 2 }));
  let right: fc.Arbitrary<unknown>;
  switch (schema.type) {
    case 'string':
      right = fc.oneof(
        schema.enum ? fc.constantFrom(...schema.enum) : fc.constantFrom('10m', '1h30m', '192.0.2.0/24', '2001:db8::/32', '$TARGET$', '/bin/true', 'ALL: $TARGET$', 'edge', 'In'),
        fc.string({ maxLength: 20 }),
        fc.string({ unit: 'binary', minLength: 1000, maxLength: 1100 }),
      );
      break;
    case 'integer':
      right = fc.oneof(fc.integer({ min: (schema.minimum ?? 0) - 2, max: Math.min(schema.maximum ?? 70000, 70000) + 2 }), fc.double(), fc.constantFrom(Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER));
      break;
    case 'boolean':
      right = fc.boolean();
      break;
    case 'int-or-string':
      right = fc.oneof(fc.integer({ min: -2, max: 70000 }), fc.constantFrom('1-2', '6000-6063', '20-10', '0-5', '65535-65536', '1_000', '0x10', '\uff11', ' 1', '1-', '-1', '1-2-3', '99999999999'));
      break;
    case 'array':
      right = depth > 4 ? fc.constant([]) : fc.array(near(schema.items, depth + 1), { maxLength: 6 });
      break;
    case 'map':
      right = fc.dictionary(fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom('__proto__', 'constructor', 'a.b', 'x[0]')), near(schema.values, depth + 1), { maxKeys: 4 });
      break;
    case 'object': {
      const keys = Object.keys(schema.properties);
      const known = fc.record(Object.fromEntries(keys.map((k) => [k, depth > 4 ? fc.constant({}) : near(schema.properties[k]!, depth + 1)])), { requiredKeys: [] });
      const extra = fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor', 'toString', 'portz', ''), fc.string({ maxLength: 6 })), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 2 });
      right = fc.oneof({ arbitrary: known, weight: 5 }, { arbitrary: fc.tuple(known, extra).map(([a, b]) => ({ ...b, ...a })), weight: 1 });
      break;
    }
  }
  return fc.oneof({ arbitrary: right, weight: 6 }, { arbitrary: wrong, weight: 1 });
}

function checkProblems(problems: readonly { path: string; message: string; line?: number; column?: number }[], lines: number): void {
  assert.ok(problems.length > 0, 'a refusal lists at least one problem');
  for (const p of problems) {
    assert.ok(typeof p.message === 'string' && p.message.length > 0, 'a problem says what is wrong');
    assert.doesNotMatch(p.message.replace(/"[^"]*"/g, ''), UNCLEAR, `unclear message: ${p.message}`);
    if (p.path === '') assert.match(p.message, DOCUMENT_LEVEL, `a problem without a field path: ${p.message}`);
    else assert.ok(TOP.includes(p.path.split(/[.[]/)[0]!) || p.message.startsWith('unknown field'), `path ${p.path} is not a field of the document`);
    if (p.line !== undefined) {
      assert.ok(Number.isInteger(p.line) && p.line >= 1 && p.line <= lines + 1, `line ${p.line} outside the ${lines}-line file`);
      assert.ok(Number.isInteger(p.column) && p.column! >= 1, `column ${p.column}`);
    }
  }
}

/** What parsing `text` must do: accept a policy that round-trips, or refuse with located problems. */
function checkYaml(text: string): void {
  let doc;
  try {
    doc = parsePolicyYaml(text, FILE);
  } catch (err) {
    assert.ok(err instanceof PolicyError, `not a PolicyError: ${(err as Error)?.stack ?? String(err)}`);
    assert.equal(err.file, FILE);
    assert.ok(err.message.startsWith(`invalid policy ${FILE}:\n`));
    checkProblems(err.problems, text.split(/\r\n|\n|\r/).length);
    // A document that parsed as YAML gives every field problem a line.
    for (const p of err.problems) if (p.path !== '' && !p.message.startsWith('YAML')) assert.ok(p.line !== undefined, `${p.path}: no line`);
    return;
  }
  const again = validateDocument(doc);
  assert.ok(again.ok, 'an accepted policy validates again');
  assert.deepEqual(again.value, doc);
  assert.deepEqual(parsePolicyYaml(renderPolicyYaml(doc, ['# fuzz']), 'rendered.yaml'), doc, 'an accepted policy survives a YAML round trip');
}

describe('fuzz: policy loading and validation', { concurrency: false }, () => {
  test('mutated YAML and JSON policies: accepted and round-tripped, or refused with paths and lines', async () => {
    await fuzz('policy YAML (mutated)', mutatedText(await corpus()), checkYaml);
  });

  test('random documents near the schema, as YAML: accepted, or refused with paths and lines', async () => {
    await fuzz('policy YAML (schema-directed)', near(documentSchema), (doc) => {
      let text: string;
      try {
        text = (stringify(doc) as string | undefined) ?? ''; // undefined: an empty file
      } catch {
        return; // not representable as YAML (yaml refuses it): nothing to parse
      }
      checkYaml(text);
    });
  });

  test('random values straight into the validator (as the API server hands them over)', async () => {
    await fuzz('policy validator (JSON)', fc.oneof(near(documentSchema), fc.jsonValue(), fc.anything()), (input) => {
      const doc = validateDocument(input);
      if (doc.ok) assert.deepEqual(validateDocument(doc.value), doc, 'validation is idempotent');
      else checkProblems(doc.problems, 0);
      const spec = validateSpec(input);
      if (!spec.ok) for (const p of spec.problems) assert.ok(p.path === 'spec' || p.path.startsWith('spec.') || p.path.startsWith('spec['), `spec path ${p.path}`);
    });
  });

  test('known hostile documents are refused with a clear problem, never thrown through', () => {
    const cases: [string, RegExp][] = [
      // Aliases that expand exponentially ("billion laughs").
      ['a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n', /\(document\): YAML cannot be read as data: Excessive alias count/],
      ['['.repeat(20000), /fuzz\.yaml:1:\d+: \(document\): YAML syntax/],
      [header + '__proto__: {spec: 1}\nspec:\n  constructor: 1\n', /fuzz\.yaml:5:\d+: __proto__: unknown field[\s\S]*fuzz\.yaml:7:\d+: spec\.constructor: unknown field/],
      [header + 'spec:\n  trigger: {count: 1e400}\n', /spec\.trigger\.count: must be an integer, got number Infinity/],
      [header + 'spec:\n  tcp: {ports: [1, "1;reboot"]}\n', /fuzz\.yaml:6:\d+: spec\.tcp\.ports\[1\]: "1;reboot" is not a port/],
    ];
    for (const [text, expected] of cases) {
      assert.throws(() => parsePolicyYaml(text, FILE), (err: Error) => err instanceof PolicyError && expected.test(err.message) ? true : assert.fail(err.message));
    }
    // Strings YAML 1.2 reads as numbers are quoted by the writer, so `convert` output reads back.
    const odd = { ...defaultPolicy(), metadata: { name: '0o17' } };
    assert.deepEqual(parsePolicyYaml(renderPolicyYaml(odd, []), FILE), odd);
    // A "__proto__" label is a label like any other: the selector still selects on it.
    const doc = parsePolicyYaml(header + 'spec:\n  nodeSelector:\n    matchLabels: {__proto__: x, role: edge}\n', FILE);
    assert.deepEqual(Object.entries(doc.spec.nodeSelector.matchLabels ?? {}), [['__proto__', 'x'], ['role', 'edge']]);
  });
});
