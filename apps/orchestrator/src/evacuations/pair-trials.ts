import { Injectable, Logger, Optional, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { Clock, NodeOps, PostCopyTrialRunner } from '@spotlift/engine';
import { NodeRepository, PostCopyTrials } from '@spotlift/store';
import { DirectoryStreamer, NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';
import { NodeEvents } from '../nodes/node-events.js';
import { TrialLease } from './trial-lease.js';

/** What a probe change that can change a trial's answer looks like: CRIU, kernel, features. */
const fingerprint = (n: NodeRecord): string =>
  [n.probe?.criuVersion, n.probe?.kernel, JSON.stringify(n.probe?.features ?? {})].join('|');

/** A node a trial may touch: ready (not draining, not under notice) and with a working CRIU. */
export const trialable = (n: NodeRecord): boolean => n.state === 'ready' && n.probe?.criuOk === true;

/** How often this replica looks for new nodes and probe changes (one `nodes.list`, no node touched). */
const CHECK_MS = 60_000;
/** The lease outlives one trial by far (a trial takes seconds); it is renewed before each trial. */
const LEASE_MS = 120_000;

const pairKey = (s: string, d: string): string => `${s}->${d}`;

/**
 * Post-copy trials per node pair ahead of any notice (issue 16): the planner proposes post-copy only where the
 * pair's trial passed, so a trial that waits for the notice costs its time out of the deadline. A trial is a
 * real post-copy migration of a tiny probe process (libs/engine post-copy-trial.ts), cached in Redis with its
 * age and TTL. Ahead of notices (worker replicas, `evacuation.trialRefreshSeconds` > 0, 6 h by default) trials
 * run for: the pairs of a node just registered or re-registered (NodeEvents), or that another replica
 * registered (seen on the next check), or whose probe found a new CRIU, kernel or feature set; and every pair
 * whose stored trial is older than trialRefreshSeconds. One trial at a time per installation (a Redis lease),
 * both nodes re-read just before each one: never on a node under notice, draining or terminating.
 */
@Injectable()
export class PairTrials implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('pair-trials');
  private readonly runner: PostCopyTrialRunner;
  private readonly running = new Map<string, Promise<PostCopyTrialRecord>>();
  private timers: NodeJS.Timeout[] = [];
  private unsubscribe?: () => void;
  /** Each node's probe fingerprint at the last check, and the nodes (re-)registered in this process since. */
  private readonly seen = new Map<string, string>();
  private readonly registered = new Set<string>();
  /** After the first check: a node not seen before is then a new one (the first check only learns the fleet). */
  private primed = false;
  /** Pairs due a trial, with when that became so: a trial stored since (by any replica) settles it. */
  private readonly due = new Map<string, number>();
  /** The pass in progress in this process (passes never overlap). */
  private passing?: Promise<PostCopyTrialRecord[]>;

  constructor(
    ops: NodeOps,
    shell: NodeShell,
    private readonly trials: PostCopyTrials,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly nodes: NodeRepository,
    private readonly lease: TrialLease,
    @Optional() private readonly nodeEvents?: NodeEvents,
  ) {
    this.runner = new PostCopyTrialRunner(ops, new DirectoryStreamer(shell), trials, clock, config.engine, config.live);
  }

  /** The trial for one pair, joined if one is already running. Never throws (a failed trial is a result). */
  run(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord> {
    const key = pairKey(source.id, destination.id);
    const open = this.running.get(key);
    if (open) return open;
    const p = this.runner.run(source, destination).finally(() => this.running.delete(key));
    this.running.set(key, p);
    return p;
  }

  /**
   * Runs the trials `source` lacks towards `destinations`, in parallel, waiting at most `budgetMs`: what has not
   * answered by then goes on in the background (its result is cached for the next plan) and counts as untested.
   */
  async runMissing(
    source: NodeRecord,
    destinations: readonly NodeRecord[],
    budgetMs: number,
  ): Promise<{ done: PostCopyTrialRecord[]; unfinished: string[] }> {
    const missing: NodeRecord[] = [];
    for (const d of destinations) if (!(await this.trials.get(source.id, d.id).catch(() => undefined))) missing.push(d);
    const done: PostCopyTrialRecord[] = [];
    let timer: NodeJS.Timeout | undefined;
    const budget = new Promise<void>((resolve) => (timer = setTimeout(resolve, budgetMs)));
    await Promise.race([Promise.all(missing.map((d) => this.run(source, d).then((r) => done.push(r)))), budget]);
    clearTimeout(timer);
    const answered = new Set(done.map((r) => r.destinationNodeId));
    return { done: [...done], unfinished: missing.filter((d) => !answered.has(d.id)).map((d) => d.id) };
  }

  /** A node registered (or re-registered: maybe a new CRIU): all its pairs are due. */
  nodeRegistered(id: string): void {
    this.registered.add(id);
  }

  /**
   * Finds what became due (nodes new to this replica or re-registered, probe changes) and, with `all`, every pair
   * whose stored trial is missing or older than trialRefreshSeconds; then runs the due pairs one after another
   * under the installation's lease. Returns the trials this pass ran ([] when another replica holds the lease:
   * the pairs stay due here, and a trial that replica stores settles them).
   */
  pass(all = false): Promise<PostCopyTrialRecord[]> {
    if (this.passing) return this.passing;
    const p = this.passOnce(all).finally(() => (this.passing = undefined));
    this.passing = p;
    return p;
  }

  private async passOnce(all: boolean): Promise<PostCopyTrialRecord[]> {
    const now = this.clock.now().getTime();
    const ready = (await this.nodes.list()).filter(trialable);
    for (const n of ready) {
      const before = this.seen.get(n.id);
      this.seen.set(n.id, fingerprint(n));
      const registered = this.registered.delete(n.id);
      if (!registered && (before === fingerprint(n) || (before === undefined && !this.primed))) continue;
      // Re-registered or changed: trials from before are stale. New to this replica (another one registered
      // it): any stored trial will do.
      const since = registered || before !== undefined ? now : 0;
      for (const o of ready)
        if (o.id !== n.id) this.due.set(pairKey(n.id, o.id), since).set(pairKey(o.id, n.id), since);
    }
    this.primed = true;
    if (all) {
      const maxAgeMs = this.config.evacuation.trialRefreshSeconds * 1000;
      for (const s of ready)
        for (const d of ready) {
          if (s.id === d.id || this.due.has(pairKey(s.id, d.id))) continue;
          const t = await this.trials.get(s.id, d.id).catch(() => undefined);
          if (!t || now - Date.parse(t.at) >= maxAgeMs) this.due.set(pairKey(s.id, d.id), now);
        }
    }
    if (this.due.size === 0) return [];
    const held = await this.lease.take(LEASE_MS).catch(() => undefined);
    if (!held) return [];
    const ran: PostCopyTrialRecord[] = [];
    try {
      for (const [key, since] of [...this.due]) {
        const [sid, did] = key.split('->') as [string, string];
        this.due.delete(key);
        // A trial stored since the pair became due (another replica's, an evacuation's) settles it.
        const stored = await this.trials.get(sid, did).catch(() => undefined);
        if (stored && Date.parse(stored.at) >= since) continue;
        // Re-read both ends now: a notice or a drain since the listing rules the pair out.
        const [s, d] = await Promise.all([this.nodes.get(sid), this.nodes.get(did)]);
        if (!s || !d || !trialable(s) || !trialable(d)) continue;
        if (!(await held.renew(LEASE_MS))) break;
        ran.push(await this.run(s, d));
      }
    } finally {
      await held.release();
    }
    return ran;
  }

  private kick(all: boolean): void {
    this.pass(all).catch((e: unknown) => this.logger.warn({ msg: 'trials ahead of notices failed', error: String(e) }));
  }

  onApplicationBootstrap(): void {
    const every = this.config.evacuation.trialRefreshSeconds * 1000;
    if (!this.config.runsWorker || every <= 0) return;
    this.unsubscribe = this.nodeEvents?.onRegistered((n) => {
      this.nodeRegistered(n.id);
      this.kick(false);
    });
    // At boot: every pair missing a trial or with an old one; then new nodes and probe changes every minute.
    this.kick(true);
    this.timers = [
      setInterval(() => this.kick(false), Math.min(CHECK_MS, every)),
      setInterval(() => this.kick(true), every),
    ];
    for (const t of this.timers) t.unref();
  }

  onApplicationShutdown(): void {
    for (const t of this.timers) clearInterval(t);
    this.unsubscribe?.();
  }
}
