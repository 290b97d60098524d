// The classic history and blocked files, line for line as PortSentry wrote them, so
// logcheck and fail2ban rules written for PortSentry keep working:
//   1732150000 - 11/21/2026 00:46:40 Host: scanner.example/198.18.0.1 Port: 79 TCP Blocked
// The name (RESOLVE_HOST, else the address again) goes before the slash and the address
// after it, as PortSentry's WriteBlocked printed resolvedHost/target: fail2ban's portsentry
// filter bans what follows the slash, so the scanner's own PTR record never picks whom.
import { appendFile, mkdir, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { CLASSIC_MODES, type ClassicMode } from '../policy/classic-modes.js';
import type { Protocol } from '../policy/types.js';

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

export function classicBlockLine(time: number, name: string, address: string, port: number, protocol: Protocol): string {
  const d = new Date(time);
  const stamp =
    `${pad(d.getMonth() + 1)}/${pad(d.getDate())}/${pad(d.getFullYear(), 4)} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return `${Math.floor(time / 1000)} - ${stamp} Host: ${name}/${address} Port: ${port} ${protocol.toUpperCase()} Blocked\n`;
}

export async function appendLine(path: string, line: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await appendFile(path, line);
}

/** PortSentry keeps one blocked file per mode, named with the mode as extension. */
export const blockedFileFor = (base: string, mode: ClassicMode): string => `${base}.${mode}`;

/** The blocked files hold the current run only: cleared at start, as PortSentry did. */
export async function resetBlockedFiles(base: string): Promise<void> {
  await Promise.all(CLASSIC_MODES.map((m) => rm(blockedFileFor(base, m), { force: true })));
}
