// Reading a classic portsentry.conf and the ignore file it names (the file I/O around
// the pure converter in classic.ts).
import { readFile } from 'node:fs/promises';
import { ClassicConfError, classicToPolicy, parseClassicConf, parseClassicModeFlags, parseIgnoreFile } from './classic.js';
import type { PolicyDocument } from './types.js';

export async function loadClassicFile(
  file: string,
  modeFlags: string[],
): Promise<{ policy: PolicyDocument; warnings: string[] }> {
  const modes = parseClassicModeFlags(modeFlags);
  if (typeof modes === 'string') throw new ClassicConfError([{ file, line: 0, key: '', message: modes }]);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ClassicConfError([{ file, line: 0, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  const conf = parseClassicConf(text, file);
  const ignoreFile = conf.settings.IGNORE_FILE?.value;
  let ignoreEntries: string[] | undefined;
  let ignoreFileMissing = false;
  if (ignoreFile) {
    try {
      ignoreEntries = parseIgnoreFile(await readFile(ignoreFile, 'utf8'), ignoreFile);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      ignoreFileMissing = true;
    }
  }
  return classicToPolicy(conf, { modes, ignoreEntries, ignoreFileMissing });
}
