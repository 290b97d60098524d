// Tests that need root or a tool skip locally with the reason printed; under CI=true a
// missing prerequisite fails the run instead, so CI never passes by skipping.
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';
import type { TestContext } from 'node:test';

export function hasTool(tool: string): boolean {
  return toolPath(tool) !== null;
}

/** Where `tool` is on the PATH (or in the sbin directories), for programs that need a full path. */
export function toolPath(tool: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return join(dir, tool);
    } catch {
      // keep looking
    }
  }
  return null;
}

function hasModule(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}

/**
 * True when the test can run; otherwise skips it (or throws under CI). `modules` are the
 * packages only the benchmarks and tests install (`npm run bench:deps`: raw-socket).
 */
export function prerequisites(t: TestContext, options: { root?: boolean; tools?: string[]; modules?: string[] }): boolean {
  const missing = missingPrerequisites({ ...options, tools: options.tools ?? [] });
  if (missing.length === 0) return true;
  const reason = `needs ${missing.join(', ')}`;
  if (process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${reason}`);
  process.stdout.write(`# skipping "${t.name}": ${reason}\n`);
  t.skip(reason);
  return false;
}

/** What is missing of root, the given tools and modules, for suites that check once for all their tests. */
export function missingPrerequisites(options: { root?: boolean; tools: string[]; modules?: string[] }): string[] {
  const out: string[] = [];
  if (options.root && process.getuid?.() !== 0) out.push('root');
  for (const tool of options.tools) if (!hasTool(tool)) out.push(tool);
  for (const name of options.modules ?? []) if (!hasModule(name)) out.push(`${name} (npm run bench:deps)`);
  return out;
}
