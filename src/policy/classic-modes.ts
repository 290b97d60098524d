// The classic mode names: $MODE$ in commands, the extensions of the blocked files.
import type { DetectMode, Protocol } from './types.js';

/** The classic mode names ($MODE$ in commands, file extensions of the blocked file). */
export type ClassicMode = 'tcp' | 'udp' | 'stcp' | 'sudp' | 'atcp' | 'audp';

export function classicMode(protocol: Protocol, mode: Exclude<DetectMode, 'off'>): ClassicMode {
  const prefix = mode === 'stealth' ? 's' : mode === 'advanced' ? 'a' : '';
  return `${prefix}${protocol}` as ClassicMode;
}

export const CLASSIC_MODES: readonly ClassicMode[] = ['tcp', 'udp', 'stcp', 'sudp', 'atcp', 'audp'];
