// Writing policy documents as YAML a person can read and edit (e.g. a converted classic
// portsentry.conf), which parsePolicyYaml reads back unchanged.
import { Document, Scalar, isScalar, parse, visit } from 'yaml';
import type { PolicyDocument } from './types.js';

/** YAML text of `doc`, headed by `headerComments` as `# ` lines. */
export function renderPolicyYaml(doc: PolicyDocument, headerComments: string[]): string {
  // YAML 1.1 quoting: kubectl reads YAML 1.1, where a bare off or yes is a boolean.
  const yamlDoc = new Document(doc, { version: '1.1' });
  // Short lists of scalars (ports, argument vectors) read best on one line: [1, 11, 15].
  visit(yamlDoc, {
    Seq(_key, node) {
      if (node.items.every((item) => isScalar(item))) node.flow = true;
    },
    // A string that YAML 1.2 would read as something else (0o17 is 15 there, not in 1.1)
    // is quoted, so the file reads back as written by either version.
    Scalar(_key, node) {
      if (typeof node.value === 'string' && !readsAs(node.value)) node.type = Scalar.QUOTE_DOUBLE;
    },
  });
  // Header lines are written here rather than as a document comment, so an empty line stays
  // "#" instead of becoming a blank line.
  const header = headerComments
    .flatMap((c) => c.split(/\r\n|\n|\r/))
    .map((l) => (l ? `# ${l}` : '#'))
    .join('\n');
  // lineWidth 0: a port list stays on one line instead of one port per line.
  const body = yamlDoc.toString({ lineWidth: 0, flowCollectionPadding: false });
  return header ? `${header}\n\n${body}` : body;
}

/** Whether `text`, written plain, reads back as the same string in YAML 1.2. */
function readsAs(text: string): boolean {
  try {
    return parse(text, { version: '1.2' }) === text;
  } catch {
    return false;
  }
}
