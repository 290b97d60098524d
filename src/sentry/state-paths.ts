// Where the standalone sentry keeps its state (pure): the files directory, next to the
// history file, holds the block record and the lock files; the control socket has a fixed
// default, so admin commands find a running sentry without being told its policy.
import { dirname, join } from 'node:path';
import type { FilesSpec } from '../policy/types.js';

export const DEFAULT_STATE_DIR = '/var/lib/kube-portsentry';
export const DEFAULT_SOCKET = '/run/kube-portsentry/control.sock';

export interface StatePaths {
  /** The files directory: the history file's, else the blocked file's, else the default. */
  dir: string;
  /** The block record. */
  record: string;
  /** Held by the running sentry (and by an admin command working without it). */
  runLock: string;
}

/** `stateDir` (--state-dir) overrides where the files directory is. */
export function statePaths(files: FilesSpec, stateDir?: string): StatePaths {
  const dir = stateDir ?? (files.history ? dirname(files.history) : files.blocked ? dirname(files.blocked) : DEFAULT_STATE_DIR);
  return { dir, record: join(dir, 'blocks.json'), runLock: join(dir, 'sentry.lock') };
}
