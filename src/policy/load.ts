// Reading policy files. Errors name the file, the line and the field, and list every problem.
import { readFile } from 'node:fs/promises';
import { LineCounter, isNode, parseAllDocuments, type Document } from 'yaml';
import type { PolicyDocument } from './types.js';
import { validateDocument, type Problem } from './validate.js';

export interface LocatedProblem extends Problem {
  line?: number;
  column?: number;
}

export class PolicyError extends Error {
  constructor(
    readonly file: string,
    readonly problems: LocatedProblem[],
  ) {
    super(
      `invalid policy ${file}:\n` +
        problems
          .map((p) => `  ${file}${p.line ? `:${p.line}:${p.column}` : ''}: ${p.path || '(document)'}: ${p.message}`)
          .join('\n'),
    );
    this.name = 'PolicyError';
  }
}

function pathSegments(path: string): (string | number)[] {
  const out: (string | number)[] = [];
  for (const m of path.matchAll(/([^.[\]"]+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/g))
    out.push(m[2] !== undefined ? Number(m[2]) : m[3] !== undefined ? (JSON.parse(m[3]) as string) : m[1]!);
  return out;
}

/** The line of the deepest node of `path` present in the document. */
function locate(doc: Document, counter: LineCounter, path: string): { line: number; column: number } | undefined {
  const segments = pathSegments(path);
  for (let n = segments.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(segments.slice(0, n), true);
    if (isNode(node) && node.range) {
      const pos = counter.linePos(node.range[0]);
      return { line: pos.line, column: pos.col };
    }
  }
  return undefined;
}

/** Parses and validates the YAML text of a policy file; throws PolicyError with every problem. */
export function parsePolicyYaml(text: string, file: string): PolicyDocument {
  const counter = new LineCounter();
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { lineCounter: counter, prettyErrors: false });
  } catch (err) {
    // yaml's parser recurses per nesting level: thousands of "- - - ..." overflow the stack.
    if (!(err instanceof RangeError)) throw err;
    throw new PolicyError(file, [{ path: '', message: `YAML cannot be read: nested too deeply (${err.message})` }]);
  }
  if (!Array.isArray(docs)) throw new PolicyError(file, [{ path: '', message: 'the file holds no YAML document' }]);
  const syntax: LocatedProblem[] = [];
  for (const d of docs)
    for (const e of d.errors) {
      const pos = counter.linePos(e.pos[0]);
      syntax.push({ path: '', message: `YAML syntax: ${e.message.split('\n')[0]}`, line: pos.line, column: pos.col });
    }
  if (syntax.length) throw new PolicyError(file, syntax);
  const real = docs.filter((d) => d.contents !== null);
  if (real.length !== 1)
    throw new PolicyError(file, [{ path: '', message: `expected one YAML document, found ${real.length}` }]);
  const doc = real[0]!;
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // yaml refuses aliases that expand too far (a "billion laughs" document) here.
    throw new PolicyError(file, [{ path: '', message: `YAML cannot be read as data: ${(err as Error).message}` }]);
  }
  const result = validateDocument(data);
  if (!result.ok)
    throw new PolicyError(
      file,
      result.problems.map((p) => ({ ...p, ...locate(doc, counter, p.path) })),
    );
  return result.value;
}

export async function loadPolicyFile(file: string): Promise<PolicyDocument> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new PolicyError(file, [{ path: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parsePolicyYaml(text, file);
}
