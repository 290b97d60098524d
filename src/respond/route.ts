// Built-in KILL_ROUTE: a blackhole route per blocked address (iproute2), removed on unblock.
// Each owner's routes carry the product's protocol number and the owner's metric, so they
// are told apart from the admin's (and another owner's) routes to the same prefix, listed
// for reconcile, and removed without touching any other.
import { addressOrNetworkOf, prefixOf, type AddressOrNetwork } from '../net/address.js';
import type { Family } from '../net/ip.js';
import { ProgramError, runProgram } from './run-program.js';

/** The route protocol number marking the product's routes (iproute2 prints it as is). */
export const ROUTE_PROTO = 157;

/** The owner's mark on its routes: `metric` (owner.ts gives each owner its own). */
export interface RouteMark {
  metric: number;
}

/** The route's destination: an address as a whole-width prefix, a network as it is. */
const destination = (target: AddressOrNetwork): string => (target.text.includes('/') ? target.text : `${target.text}/${prefixOf(target)}`);

const marked = (mark: RouteMark): string[] => ['proto', String(ROUTE_PROTO), 'metric', String(mark.metric)];

export async function addBlackholeRoute(target: AddressOrNetwork, mark: RouteMark): Promise<void> {
  await runProgram(['ip', `-${target.family}`, 'route', 'replace', 'blackhole', destination(target), ...marked(mark)]);
}

export async function removeBlackholeRoute(target: AddressOrNetwork, mark: RouteMark): Promise<void> {
  try {
    await runProgram(['ip', `-${target.family}`, 'route', 'del', 'blackhole', destination(target), ...marked(mark)]);
  } catch (err) {
    if (err instanceof ProgramError && /No such process|not found/i.test(err.stderr)) return;
    throw err;
  }
}

/** The owner's blackhole routes of a family, parsed where they are listed ("198.18.0.1", "198.18.9.0/24"). */
export async function listBlackholeRoutes(family: Family, mark: RouteMark): Promise<AddressOrNetwork[]> {
  const { stdout } = await runProgram(['ip', '-j', `-${family}`, 'route', 'show', 'type', 'blackhole', 'proto', String(ROUTE_PROTO)]);
  const routes = JSON.parse(stdout || '[]') as { dst?: string; metric?: number }[];
  const out: AddressOrNetwork[] = [];
  for (const r of routes) {
    const target = r.dst !== undefined && (r.metric ?? 0) === mark.metric ? addressOrNetworkOf(r.dst) : null;
    if (target) out.push(target);
  }
  return out;
}
