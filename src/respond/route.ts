// Built-in KILL_ROUTE: a blackhole route per blocked address (iproute2), removed on unblock.
// Each owner's routes carry the product's protocol number and the owner's metric, so they
// are told apart from the admin's (and another owner's) routes to the same prefix, listed
// for reconcile, and removed without touching any other.
import type { Family } from '../net/ip.js';
import { ProgramError, runProgram } from './run-program.js';

/** The route protocol number marking the product's routes (iproute2 prints it as is). */
export const ROUTE_PROTO = 157;

/** The owner's mark on its routes: `metric` (owner.ts gives each owner its own). */
export interface RouteMark {
  metric: number;
}

const prefixOf = (address: string, family: Family): string =>
  address.includes('/') ? address : `${address}/${family === 4 ? 32 : 128}`;

const marked = (mark: RouteMark): string[] => ['proto', String(ROUTE_PROTO), 'metric', String(mark.metric)];

export async function addBlackholeRoute(address: string, family: Family, mark: RouteMark): Promise<void> {
  await runProgram(['ip', `-${family}`, 'route', 'replace', 'blackhole', prefixOf(address, family), ...marked(mark)]);
}

export async function removeBlackholeRoute(address: string, family: Family, mark: RouteMark): Promise<void> {
  try {
    await runProgram(['ip', `-${family}`, 'route', 'del', 'blackhole', prefixOf(address, family), ...marked(mark)]);
  } catch (err) {
    if (err instanceof ProgramError && /No such process|not found/i.test(err.stderr)) return;
    throw err;
  }
}

/** The owner's blackhole routes of a family, as prefixes ("198.18.0.1", "198.18.9.0/24"). */
export async function listBlackholeRoutes(family: Family, mark: RouteMark): Promise<string[]> {
  const { stdout } = await runProgram(['ip', '-j', `-${family}`, 'route', 'show', 'type', 'blackhole', 'proto', String(ROUTE_PROTO)]);
  const routes = JSON.parse(stdout || '[]') as { dst?: string; metric?: number }[];
  return routes.filter((r) => (r.metric ?? 0) === mark.metric && r.dst).map((r) => r.dst!);
}
