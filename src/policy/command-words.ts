// Classic command strings (KILL_ROUTE, KILL_RUN_CMD) split into argument vectors, as a
// shell splits words, with no shell ever run: what only a shell could do is refused.

const NO_SHELL = 'kube-portsentry runs commands without a shell: put the pipeline in a script and name the script';

/**
 * Splits a classic command string into an argument vector the way a shell splits words:
 * whitespace separates, quotes group and are removed, a backslash (outside single quotes)
 * takes the next character literally. `$TARGET$`, `$PORT$` and `$MODE$` stay as text.
 * Anything only a shell could do is returned as an error message instead of an argv.
 */
export function splitCommand(text: string): string[] | string {
  const args: string[] = [];
  let word = '';
  let inWord = false;
  let quote: '"' | "'" | null = null;
  let quoteStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    const next = text[i + 1] ?? '';
    if (quote === "'") {
      if (c === "'") quote = null;
      else word += c;
      continue;
    }
    if (c === '\\') {
      if (i + 1 >= text.length) return 'ends with a backslash that escapes nothing';
      word += next;
      inWord = true;
      i++;
      continue;
    }
    if (c === '$') {
      const classic = /^\$[A-Za-z_]+\$/.exec(text.slice(i));
      if (classic) {
        // A classic variable; the policy validator checks that its name is known.
        word += classic[0];
        inWord = true;
        i += classic[0].length - 1;
        continue;
      }
      // Inside double quotes a shell still expands these, so they cannot work there either.
      if (next === '(') return `uses shell syntax "$("; ${NO_SHELL}`;
      if (next === '{' || /[A-Za-z_]/.test(next)) {
        const name = /^\$\{?[A-Za-z_][A-Za-z0-9_]*\}?/.exec(text.slice(i))?.[0] ?? '${';
        return (
          `uses shell variable ${JSON.stringify(name)}; kube-portsentry runs commands without a shell ` +
          'and substitutes only $TARGET$, $PORT$ and $MODE$'
        );
      }
      word += c;
      inWord = true;
      continue;
    }
    if (c === '`') return `uses shell syntax "\`"; ${NO_SHELL}`;
    if (quote === '"') {
      if (c === '"') quote = null;
      else word += c;
      continue;
    }
    if (c === '"' || c === "'") {
      quote = c;
      quoteStart = i;
      inWord = true;
      continue;
    }
    if (c === ' ' || c === '\t') {
      if (inWord) args.push(word);
      word = '';
      inWord = false;
      continue;
    }
    if ('|&;<>()'.includes(c)) {
      const op = (c === next && '|&;<>'.includes(c)) ? c + next : c;
      return `uses shell syntax ${JSON.stringify(op)}; ${NO_SHELL}`;
    }
    // A shell would drop the rest of the line as a comment; we would pass it on as words.
    if (c === '#' && !inWord) return `uses a shell comment "#"; ${NO_SHELL}`;
    word += c;
    inWord = true;
  }
  if (quote) return `has an unterminated ${quote} quote (opened at character ${quoteStart + 1})`;
  if (inWord) args.push(word);
  return args;
}
