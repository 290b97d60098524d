// Runs a program from an argument vector. Never through a shell: an argument is passed
// to the program as one string, whatever characters it holds.
import { execFile } from 'node:child_process';

export interface ProgramResult {
  stdout: string;
  stderr: string;
}

export class ProgramError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stderr: string,
  ) {
    super(`${argv[0]} failed (${code ?? 'killed'}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`);
    this.name = 'ProgramError';
  }
}

export function runProgram(
  argv: readonly string[],
  options: { input?: string; timeoutMs?: number; maxOutputBytes?: number } = {},
): Promise<ProgramResult> {
  const [program, ...args] = argv;
  if (!program) return Promise.reject(new Error('empty command'));
  return new Promise((resolve, reject) => {
    const child = execFile(
      program,
      args,
      { shell: false, timeout: options.timeoutMs ?? 10_000, maxBuffer: options.maxOutputBytes ?? 16 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        if (err) {
          const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
          reject(new ProgramError(argv, e.killed ? 'timeout' : (e.code ?? null), stderr || e.message));
        } else resolve({ stdout, stderr });
      },
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}
