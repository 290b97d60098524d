// Built-in KILL_ROUTE: a blackhole route per blocked address (iproute2), removed on unblock.
import type { Family } from '../net/ip.js';
import { ProgramError, runProgram } from './run-program.js';

const prefixOf = (address: string, family: Family): string =>
  address.includes('/') ? address : `${address}/${family === 4 ? 32 : 128}`;

export async function addBlackholeRoute(address: string, family: Family): Promise<void> {
  await runProgram(['ip', `-${family}`, 'route', 'replace', 'blackhole', prefixOf(address, family)]);
}

export async function removeBlackholeRoute(address: string, family: Family): Promise<void> {
  try {
    await runProgram(['ip', `-${family}`, 'route', 'del', 'blackhole', prefixOf(address, family)]);
  } catch (err) {
    if (err instanceof ProgramError && /No such process|not found/i.test(err.stderr)) return;
    throw err;
  }
}
