// Reading a classic portsentry.conf and the ignore file it names (the file I/O around
// the pure converter in classic.ts).
import { readFile } from 'node:fs/promises';
import { ClassicConfError, classicToPolicy, parseClassicConf, parseClassicModeFlags, parseDebianDefaults, parseIgnoreFile } from './classic.js';
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
  const ignore = conf.settings.IGNORE_FILE;
  let ignoreEntries: string[] | undefined;
  let ignoreFileMissing = false;
  if (ignore?.value) {
    let ignoreText: string | undefined;
    try {
      ignoreText = await readFile(ignore.value, 'utf8');
    } catch (err) {
      // Missing is normal (PortSentry went on without it); unreadable is the line's problem.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new ClassicConfError([{ file, line: ignore.line, key: 'IGNORE_FILE', message: `cannot read ${JSON.stringify(ignore.value)}: ${(err as Error).message}` }]);
      ignoreFileMissing = true;
    }
    if (ignoreText !== undefined) ignoreEntries = parseIgnoreFile(ignoreText, ignore.value);
  }
  return classicToPolicy(conf, { modes, ignoreEntries, ignoreFileMissing });
}

/** The classic mode flags Debian's /etc/default/portsentry stands for (see parseDebianDefaults). */
export async function loadDebianDefaults(file: string): Promise<{ flags: string[]; warnings: string[] }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new ClassicConfError([{ file, line: 0, key: '', message: `cannot read: ${(err as Error).message}` }]);
  }
  return parseDebianDefaults(text, file);
}
