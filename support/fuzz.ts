// Time-bounded fuzzing for test/fuzz: each target runs for KPS_FUZZ_MS (default 3 s) with
// one seed per process, printed so a failure can be replayed with KPS_FUZZ_SEED=<seed>.
// Inputs are random or mutated from valid corpora (byte flips, truncation, splices,
// duplicated lines, huge numbers, unicode, deep nesting). The heap is measured after a gc
// at the end of a warm-up quarter and at the end, to catch growth without bound.
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';

export const FUZZ_MS = Number(process.env.KPS_FUZZ_MS ?? 3000);
export const FUZZ_SEED = process.env.KPS_FUZZ_SEED !== undefined ? Number(process.env.KPS_FUZZ_SEED) : (Date.now() ^ (Math.random() * 0x7fffffff)) | 0;
if (!Number.isFinite(FUZZ_MS) || FUZZ_MS <= 0) throw new Error(`KPS_FUZZ_MS must be a positive number of milliseconds, got ${process.env.KPS_FUZZ_MS}`);
if (!Number.isInteger(FUZZ_SEED)) throw new Error(`KPS_FUZZ_SEED must be an integer, got ${process.env.KPS_FUZZ_SEED}`);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** A heap that grows by more than this between warm-up and end grows without bound. */
const HEAP_GROWTH_LIMIT = 48 * 1024 * 1024;

export interface FuzzOutcome {
  runs: number;
  heapWarmMB: number;
  heapEndMB: number;
}

/**
 * Runs `property` for the time budget (a quarter as warm-up, then the rest), failing with
 * fast-check's report (seed, path, shrunk counterexample) on the first counterexample.
 */
export async function fuzz<T>(
  name: string,
  arbitrary: fc.Arbitrary<T>,
  check: (input: T) => void | Promise<void>,
  options: { budgetMs?: number; minRuns?: number } = {},
): Promise<FuzzOutcome> {
  const budget = options.budgetMs ?? FUZZ_MS;
  process.stdout.write(`# fuzz ${name}: seed ${FUZZ_SEED}, ${budget} ms (replay: KPS_FUZZ_SEED=${FUZZ_SEED})\n`);
  const phase = async (seed: number, ms: number): Promise<number> => {
    const property = fc.asyncProperty(arbitrary, async (input) => {
      await check(input);
    });
    const details = await fc.check(property, { seed, numRuns: Number.MAX_SAFE_INTEGER, interruptAfterTimeLimit: ms, endOnFailure: false });
    if (details.failed) {
      const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
      const example = JSON.stringify(details.counterexample, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('hex') : v));
      throw new Error(
        `fuzz ${name} (KPS_FUZZ_SEED=${FUZZ_SEED}, fast-check seed ${details.seed}, path ${details.counterexamplePath}):\n` +
          `${cause}\ncounterexample: ${example.length > 3000 ? `${example.slice(0, 3000)}... (${example.length} characters)` : example}`,
      );
    }
    return details.numRuns;
  };
  let runs = await phase(FUZZ_SEED, budget / 4);
  const warm = heapAfterGc();
  runs += await phase(FUZZ_SEED + 1, (budget * 3) / 4);
  const end = heapAfterGc();
  const outcome = { runs, heapWarmMB: +(warm / 2 ** 20).toFixed(1), heapEndMB: +(end / 2 ** 20).toFixed(1) };
  process.stdout.write(`# fuzz ${name}: ${runs} inputs, heap ${outcome.heapWarmMB} MB after warm-up, ${outcome.heapEndMB} MB at the end\n`);
  assert.ok(runs >= (options.minRuns ?? 50), `fuzz ${name}: only ${runs} inputs in ${budget} ms`);
  assert.ok(end - warm < HEAP_GROWTH_LIMIT, `fuzz ${name}: heap grew from ${outcome.heapWarmMB} to ${outcome.heapEndMB} MB`);
  return outcome;
}

// ---- mutations --------------------------------------------------------------------------

/** Text that breaks parsers: quoting, comments, YAML anchors and tags, huge and odd numbers, unicode. */
export const HOSTILE_TOKENS = [
  '"', "'", '#', '=', ':', '-', ',', '[', ']', '{', '}', '\\', '$', '`', '|', ';', '&', '\t', '\r', '\n', '\u0000',
  '&a ', '*a', '!!binary ', '!!js/function ', '<<: ', '? ', '%YAML 1.2\n', '---\n', '...\n', '__proto__', 'constructor',
  '99999999999999999999999999', '1e400', '-1e400', '-0', '0x10', '0o17', '.inf', '.nan', 'NaN', '~', 'null', 'true', 'no',
  '4294967296', '65536', '-1', '9007199254740993', '1.5', '1_000',
  '\u202e', '\u00e9', 'e\u0301', '\u{1f600}', '\ud800', '\ufeff', '\u2028', '\uff11', '\u0660',
  '$TARGET$', '$(touch /tmp/x)', '`id`', '; rm -rf /', '../../etc/passwd',
];

type Mutation =
  | { kind: 'flip'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'delete'; at: number; length: number }
  | { kind: 'insert'; at: number; text: string }
  | { kind: 'duplicate'; at: number; length: number }
  | { kind: 'line'; at: number; op: 'duplicate' | 'delete' | 'swap' }
  | { kind: 'nest'; at: number; open: string; depth: number };

const at = fc.nat();
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at, value: fc.nat(255) }),
  fc.record({ kind: fc.constant('truncate' as const), at }),
  fc.record({ kind: fc.constant('delete' as const), at, length: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    kind: fc.constant('insert' as const),
    at,
    text: fc.oneof(fc.constantFrom(...HOSTILE_TOKENS), fc.string({ maxLength: 12 }), fc.string({ unit: 'binary', maxLength: 12 })),
  }),
  fc.record({ kind: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 200 }) }),
  fc.record({ kind: fc.constant('line' as const), at, op: fc.constantFrom('duplicate' as const, 'delete' as const, 'swap' as const) }),
  fc.record({ kind: fc.constant('nest' as const), at, open: fc.constantFrom('[', '{a: ', '- ', '{"a":'), depth: fc.integer({ min: 10, max: 5000 }) }),
);

function applyText(text: string, m: Mutation): string {
  const i = text.length ? m.at % (text.length + 1) : 0;
  switch (m.kind) {
    case 'flip':
      return text.slice(0, i) + String.fromCharCode(m.value) + text.slice(i + 1);
    case 'truncate':
      return text.slice(0, i);
    case 'delete':
      return text.slice(0, i) + text.slice(i + m.length);
    case 'insert':
      return text.slice(0, i) + m.text + text.slice(i);
    case 'duplicate':
      return text.slice(0, i + m.length) + text.slice(i, i + m.length) + text.slice(i + m.length);
    case 'nest':
      return text.slice(0, i) + m.open.repeat(m.depth) + text.slice(i);
    case 'line': {
      const lines = text.split('\n');
      const l = m.at % lines.length;
      if (m.op === 'duplicate') lines.splice(l, 0, lines[l]!);
      else if (m.op === 'delete') lines.splice(l, 1);
      else if (l + 1 < lines.length) [lines[l], lines[l + 1]] = [lines[l + 1]!, lines[l]!];
      return lines.join('\n');
    }
  }
}

/** A corpus entry with 1-8 mutations, or two entries spliced at random points. */
export function mutatedText(corpus: readonly string[]): fc.Arbitrary<string> {
  const one = fc.tuple(fc.constantFrom(...corpus), fc.array(mutation, { minLength: 1, maxLength: 8 })).map(([text, ms]) => ms.reduce(applyText, text));
  const spliced = fc
    .tuple(fc.constantFrom(...corpus), fc.constantFrom(...corpus), at, at)
    .map(([a, b, i, j]) => a.slice(0, i % (a.length + 1)) + b.slice(j % (b.length + 1)));
  return fc.oneof({ arbitrary: one, weight: 4 }, { arbitrary: spliced, weight: 1 });
}

/** A corpus entry of bytes with 1-6 byte-level mutations (flip, truncate, splice in random bytes, duplicate). */
export function mutatedBytes(corpus: readonly Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('flip' as const), at, value: fc.nat(255) }),
    fc.record({ kind: fc.constant('bit' as const), at, bit: fc.nat(7) }),
    fc.record({ kind: fc.constant('truncate' as const), at }),
    fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ maxLength: 16 }) }),
    fc.record({ kind: fc.constant('duplicate' as const), at, length: fc.integer({ min: 1, max: 40 }) }),
  );
  return fc.tuple(fc.constantFrom(...corpus), fc.array(op, { minLength: 1, maxLength: 6 })).map(([start, ops]) => {
    let b = Uint8Array.from(start);
    for (const o of ops) {
      const i = b.length ? o.at % b.length : 0;
      if (o.kind === 'flip') {
        if (b.length) b[i] = o.value;
      } else if (o.kind === 'bit') {
        if (b.length) b[i]! ^= 1 << o.bit;
      } else if (o.kind === 'truncate') b = b.slice(0, i);
      else if (o.kind === 'insert') b = Uint8Array.from([...b.slice(0, i), ...o.bytes, ...b.slice(i)]);
      else b = Uint8Array.from([...b.slice(0, i + o.length), ...b.slice(i, i + o.length), ...b.slice(i + o.length)]);
    }
    return b;
  });
}
