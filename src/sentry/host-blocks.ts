// The standalone sentry's blocks across restarts: every block is in the record (next to the
// history file) before or right after it is in the kernel; at start the record and what is
// in place are reconciled (blocks/reconcile.ts decides, this file carries it out); an
// admin's block and unblock go through here, running or not.
import { engineBlock, type BlockEntry } from '../blocks/entry.js';
import { reconcile, type HostState, type KernelEntry, type ReconcilePlan } from '../blocks/reconcile.js';
import type { BlockRecord, Engine } from '../engine/engine.js';
import type { Logger } from '../log/logger.js';
import type { Metrics } from '../metrics/metrics.js';
import type { Family } from '../net/ip.js';
import type { ResponseSpec } from '../policy/types.js';
import type { Firewall } from '../respond/firewall/firewall.js';
import type { FirewallNames } from '../respond/firewall/owner.js';
import { listHostsDenyLines, removeHostsDenyLine } from '../respond/hosts-deny.js';
import { removeOwnedFirewall, removeOwnedState, type Removed } from '../respond/owned-state.js';
import type { Blocked, Responder } from '../respond/responder.js';
import type { AddressOrNetwork } from '../net/address.js';
import { listBlackholeRoutes, removeBlackholeRoute } from '../respond/route.js';
import { RecordFile } from './record-file.js';
import type { StatePaths } from './state-paths.js';

export interface HostBlocksOptions {
  response: ResponseSpec;
  paths: StatePaths;
  names: FirewallNames;
  firewall: Firewall | null;
  responder: Responder;
  /** The engine that decides detections; left out by admin commands run without a sentry. */
  engine?: Engine;
  logger: Logger;
  metrics: Metrics;
}

/** A record entry in the shape the responder's actions take. */
export function blockedOfEntry(e: BlockEntry): Blocked {
  return { target: e.target, until: e.until, tag: e.origin, ...(e.probe && e.mode ? { probe: { port: e.probe.port, mode: e.mode } } : {}) };
}

export class HostBlocks {
  private readonly entries = new Map<string, BlockEntry>();
  readonly record: RecordFile;

  constructor(private readonly o: HostBlocksOptions) {
    this.record = new RecordFile(o.paths.record, () => this.entries.values(), (err) => {
      o.metrics.actionErrors.inc({ action: 'record' });
      o.logger.error({ file: o.paths.record, err: err.message }, 'cannot write the block record');
    });
  }

  /** Blocks in force, oldest first. */
  list(): BlockEntry[] {
    return [...this.entries.values()].sort((a, b) => a.since - b.since);
  }

  get size(): number {
    return this.entries.size;
  }

  /**
   * Sets the firewall up keeping the sets' entries, then keeps, lifts and removes as the
   * record and what is in place say. A damaged record stops the start (RecordError).
   */
  async start(): Promise<ReconcilePlan> {
    const recorded = await this.record.load();
    const { firewall, names, responder } = this.o;
    // Another backend's objects of ours (the policy changed backend, or to none) go.
    for (const gone of await removeOwnedFirewall(names, firewall?.name)) this.o.logger.info({ removed: gone }, 'firewall objects of an earlier run removed');
    if (firewall) await firewall.setup({ keepEntries: true });
    const plan = reconcile(Date.now(), recorded, await this.readState(), {
      firewall: firewall !== null,
      routes: responder.builtInRoutes,
      hostsDenyLine: this.o.response.hostsDeny.enabled ? (e) => responder.hostsDenyLineOf(blockedOfEntry(e)) : null,
    });
    for (const e of plan.keep) this.entries.set(e.target.text, e);
    await this.record.write(plan.keep);
    for (const k of plan.kernel.remove) await this.attempt('firewall', () => firewall!.remove(k.target));
    for (const { entry } of plan.kernel.add) await responder.block(blockedOfEntry(entry), { firewall: true });
    for (const route of plan.routes.remove) await this.attempt('route', () => removeBlackholeRoute(route, { metric: names.routeMetric }));
    for (const entry of plan.routes.add) await responder.block(blockedOfEntry(entry), { route: true });
    for (const line of plan.hostsDeny.remove) await this.attempt('hosts-deny', () => removeHostsDenyLine(this.o.response.hostsDeny.path, line, { lockDir: this.o.paths.dir }));
    for (const entry of plan.hostsDeny.add) await responder.block(blockedOfEntry(entry), { hostsDeny: true });
    for (const entry of plan.lifted) await responder.runUnblockCommand(blockedOfEntry(entry));
    this.syncEngine();
    return plan;
  }

  /**
   * For an admin command while the sentry is stopped: the record as it is, and the firewall
   * ready for an addition without touching the rules the stopped sentry left in force.
   */
  async open(): Promise<void> {
    await this.load();
    await this.o.firewall?.setup({ keepEntries: true, keepRules: true });
  }

  /** The record as it is, nothing else touched. */
  async load(): Promise<void> {
    for (const e of await this.record.load()) this.entries.set(e.target.text, e);
  }

  /** What of the owner's is in place now: kernel entries, routes, hosts.deny lines. */
  private async readState(): Promise<HostState> {
    const kernel: KernelEntry[] = [];
    const firewall = this.o.firewall;
    for (const family of [4, 6] as Family[]) {
      if (firewall) kernel.push(...(await firewall.list(family).catch(() => [])));
    }
    const routes: AddressOrNetwork[] = [];
    for (const family of [4, 6] as Family[]) routes.push(...(await listBlackholeRoutes(family, { metric: this.o.names.routeMetric }).catch(() => [])));
    const hostsDeny = await listHostsDenyLines(this.o.response.hostsDeny.path).catch(() => []);
    return { kernel, routes, hostsDeny };
  }

  /** The engine takes back the detections it can; every other block it holds as an address. */
  private syncEngine(): void {
    const engine = this.o.engine;
    if (!engine) return;
    const held: string[] = [];
    for (const e of this.entries.values()) {
      const block = engineBlock(e);
      if (block) engine.restore(block);
      else held.push(e.target.text);
    }
    engine.setHeld(held);
  }

  /** Records a detection's block (its kernel entry is in place already). */
  recordDetection(entry: BlockEntry): Promise<void> {
    this.entries.set(entry.target.text, entry);
    return this.record.save();
  }

  /**
   * Lifts the blocks whose time is up: those the engine expired, and the ones it only
   * holds. The record goes first: a crash halfway leaves a stray, which a start removes.
   */
  async expire(now: number, fromEngine: BlockRecord[]): Promise<BlockEntry[]> {
    const lifted: BlockEntry[] = [];
    for (const block of fromEngine) {
      const e = this.entries.get(block.source.text);
      if (e && engineBlock(e)) {
        this.entries.delete(block.source.text);
        lifted.push(e);
      }
    }
    let held = false;
    for (const e of this.entries.values()) {
      if (engineBlock(e) || e.until === null || e.until > now) continue;
      this.entries.delete(e.target.text);
      lifted.push(e);
      held = true;
    }
    if (!lifted.length) return lifted;
    await this.record.save();
    if (held) this.syncEngine();
    for (const e of lifted) await this.o.responder.lift(blockedOfEntry(e));
    return lifted;
  }

  /**
   * An admin's block (checked by the caller): in the record, then in place. A block already
   * there is replaced: its kernel timeout cannot change in place.
   */
  async block(target: AddressOrNetwork, until: number | null, reason: string): Promise<BlockEntry> {
    const address = target.text;
    const entry: BlockEntry = { target, origin: 'manual', reason, ports: [], types: [], since: Date.now(), until };
    const before = this.entries.get(address);
    this.entries.set(address, entry);
    await this.record.save();
    if (before) {
      this.o.engine?.release(address);
      const firewall = this.o.firewall;
      if (firewall) await this.attempt('firewall', () => firewall.remove(target));
    }
    this.syncEngine();
    await this.o.responder.block(blockedOfEntry(entry));
    return entry;
  }

  /**
   * Lifts an admin's or a detection's block of exactly `target`, and resets the source's
   * trigger state either way, so its next probe is judged afresh.
   */
  async unblock(target: AddressOrNetwork): Promise<BlockEntry | null> {
    const address = target.text;
    const entry = this.entries.get(address) ?? null;
    this.o.engine?.release(address);
    if (!entry) return null;
    this.entries.delete(address);
    await this.record.save();
    this.syncEngine();
    await this.o.responder.lift(blockedOfEntry(entry));
    return entry;
  }

  /**
   * Removes everything the sentry owns: each block lifted (routes, hosts.deny lines, unblock
   * commands), then the owner's firewall objects, any stray route or line, and the record.
   */
  async flush(): Promise<Removed> {
    const entries = this.list();
    this.entries.clear();
    for (const e of entries) await this.o.responder.lift(blockedOfEntry(e), { keepFirewall: true });
    const removed = await removeOwnedState({
      names: this.o.names,
      hostsDeny: { path: this.o.response.hostsDeny.path, lockDir: this.o.paths.dir },
    });
    await this.record.remove();
    this.syncEngine();
    return removed;
  }

  private async attempt(action: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.o.metrics.actionErrors.inc({ action });
      this.o.logger.error({ action, err: (err as Error).message }, 'action failed');
    }
  }
}
