// Where a command's policy comes from: --policy (YAML), --config (a classic portsentry.conf,
// with its mode flags or Debian's /etc/default/portsentry), or the bundled default. `run` and
// the admin commands read it the same way, so they agree on the files and the record.
import { loadClassicFile, loadDebianDefaults } from '../policy/classic-load.js';
import { defaultPolicy } from '../policy/default.js';
import { loadPolicyFile } from '../policy/load.js';
import type { PolicyDocument } from '../policy/types.js';
import { UsageError } from './usage.js';

export const CLASSIC_FLAGS = ['-tcp', '-udp', '-stcp', '-sudp', '-atcp', '-audp'];

/** Debian's portsentry read this configuration (its path is compiled in). */
const DEBIAN_CONFIG = '/etc/portsentry/portsentry.conf';

/** The parseArgs options of a policy source. */
export const POLICY_OPTIONS = {
  policy: { type: 'string' },
  config: { type: 'string' },
  defaults: { type: 'string' },
  'state-dir': { type: 'string' },
} as const;

/** Splits the classic single-dash mode flags from the rest, which parseArgs reads. */
export function splitClassicFlags(args: string[]): { classic: string[]; rest: string[] } {
  return {
    classic: args.filter((a) => CLASSIC_FLAGS.includes(a)),
    rest: args.filter((a) => !CLASSIC_FLAGS.includes(a)),
  };
}

export async function loadPolicy(values: { policy?: string; config?: string; defaults?: string }, classic: string[]): Promise<PolicyDocument> {
  if (values.policy && (values.config || values.defaults)) throw new UsageError('give --policy, or --config (with --defaults), not both');
  if (values.defaults && classic.length) throw new UsageError(`give the classic mode flags (${classic.join(' ')}) or --defaults, not both`);
  if (classic.length && !values.config) throw new UsageError(`${classic.join(' ')}: classic mode flags go with --config`);
  let flags = classic;
  if (values.defaults) {
    const defaults = await loadDebianDefaults(values.defaults);
    for (const w of defaults.warnings) process.stderr.write(`warning: ${w}\n`);
    flags = defaults.flags;
  }
  const config = values.config ?? (values.defaults ? DEBIAN_CONFIG : undefined);
  if (config) {
    const { policy, warnings } = await loadClassicFile(config, flags);
    for (const w of warnings) process.stderr.write(`warning: ${w}\n`);
    return policy;
  }
  if (values.policy) return loadPolicyFile(values.policy);
  return defaultPolicy();
}
