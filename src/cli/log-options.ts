// --log-level and --log-format, as every long-running command takes them.
import { defaultLogFormat, LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from '../log/logger.js';
import { UsageError } from './usage.js';

export const LOG_OPTIONS = {
  'log-level': { type: 'string', default: 'info' },
  'log-format': { type: 'string' },
} as const;

export function logOptions(values: { 'log-level'?: string; 'log-format'?: string }): { level: LogLevel; format: LogFormat } {
  const level = (values['log-level'] ?? 'info') as LogLevel;
  if (!LOG_LEVELS.includes(level)) throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const format = (values['log-format'] ?? defaultLogFormat()) as LogFormat;
  if (!LOG_FORMATS.includes(format)) throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}`);
  return { level, format };
}
