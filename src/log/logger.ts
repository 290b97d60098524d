// Logs on stdout: JSON (pino) by default, one line per probe, per block, per action
// failure; or the same records as text for a terminal, or as PortSentry's classic lines.
import { pino, type Logger } from 'pino';
import { formatClassic, formatText, type LogFormat, type LogRecord } from './formats.js';

export type { Logger } from 'pino';
export { LOG_FORMATS, type LogFormat } from './formats.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** JSON when stdout is a file or a pipe (a journal, a collector), text at a terminal. */
export const defaultLogFormat = (): LogFormat => (process.stdout.isTTY ? 'text' : 'json');

/** Turns each serialised pino record into the format's lines on `out`. */
function reformat(format: Exclude<LogFormat, 'json'>, out: NodeJS.WritableStream): { write(line: string): void } {
  return {
    write(line: string) {
      let record: LogRecord;
      try {
        record = JSON.parse(line) as LogRecord;
      } catch {
        out.write(line);
        return;
      }
      const lines = format === 'text' ? [formatText(record)] : formatClassic(record);
      if (lines.length) out.write(`${lines.join('\n')}\n`);
    },
  };
}

/** A logger on stdout (or `out`: the admin commands log to stderr, their answer goes to stdout). */
export function createLogger(level: LogLevel = 'info', name = 'kube-portsentry', format: LogFormat = 'json', out: NodeJS.WritableStream = process.stdout): Logger {
  const options = {
    name,
    level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (format !== 'json') return pino(options, reformat(format, out));
  return out === process.stdout ? pino(options) : pino(options, out);
}
