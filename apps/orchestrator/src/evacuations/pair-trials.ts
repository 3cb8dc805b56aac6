import { Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { Clock, NodeOps, PostCopyTrialRunner } from '@spotlift/engine';
import { NodeRepository, PostCopyTrials } from '@spotlift/store';
import { DirectoryStreamer, NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';

/** What a probe change that can change a trial's answer looks like: CRIU, kernel, features. */
const fingerprint = (n: NodeRecord): string =>
  [n.probe?.criuVersion, n.probe?.kernel, JSON.stringify(n.probe?.features ?? {})].join('|');

/** A node a trial may touch: ready (not draining, not under notice) and with a working CRIU. */
export const trialable = (n: NodeRecord): boolean => n.state === 'ready' && n.probe?.criuOk === true;

/**
 * Post-copy trials per node pair ahead of any notice (issue 16): the planner proposes post-copy only where the
 * pair's trial passed, so a trial that waits for the notice costs its time out of the deadline. A trial is a
 * real post-copy migration of a tiny probe process (libs/engine post-copy-trial.ts), cached in Redis with its
 * age and TTL; this class runs the missing ones, never on a node under notice, at most one per pair at a time.
 */
@Injectable()
export class PairTrials implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('pair-trials');
  private readonly runner: PostCopyTrialRunner;
  private readonly running = new Map<string, Promise<PostCopyTrialRecord>>();
  private timer?: NodeJS.Timeout;
  /** Each node's probe fingerprint at the last scheduled pass, and the pairs a change since made stale. */
  private readonly seen = new Map<string, string>();
  private readonly stale = new Set<string>();

  constructor(
    ops: NodeOps,
    shell: NodeShell,
    private readonly trials: PostCopyTrials,
    clock: Clock,
    private readonly config: AppConfig,
    private readonly nodes: NodeRepository,
  ) {
    this.runner = new PostCopyTrialRunner(ops, new DirectoryStreamer(shell), trials, clock, config.engine, config.live);
  }

  /** The trial for one pair, joined if one is already running. Never throws (a failed trial is a result). */
  run(source: NodeRecord, destination: NodeRecord): Promise<PostCopyTrialRecord> {
    const key = `${source.id}->${destination.id}`;
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

  /**
   * One scheduled pass: the first pair among ready nodes (both ends) with no stored trial, or whose trial a probe
   * change since made stale, gets one (a node registered since has none). One pair per pass keeps it cheap (a trial freezes a probe for well under a second and moves a few pages).
   */
  async refreshOne(): Promise<PostCopyTrialRecord | undefined> {
    const ready = (await this.nodes.list()).filter(trialable);
    // A probe that found a new CRIU, kernel or feature set makes every stored trial of that node stale.
    for (const n of ready) {
      const before = this.seen.get(n.id);
      this.seen.set(n.id, fingerprint(n));
      if (before === undefined || before === fingerprint(n)) continue;
      for (const o of ready) if (o.id !== n.id) this.stale.add(`${n.id}->${o.id}`).add(`${o.id}->${n.id}`);
    }
    for (const s of ready)
      for (const d of ready) {
        const key = `${s.id}->${d.id}`;
        if (s.id === d.id || this.running.has(key)) continue;
        if (!this.stale.has(key) && (await this.trials.get(s.id, d.id).catch(() => ({})))) continue;
        this.stale.delete(key);
        return this.run(s, d);
      }
    return undefined;
  }

  onApplicationBootstrap(): void {
    const every = this.config.evacuation.trialRefreshSeconds * 1000;
    if (!this.config.runsWorker || every <= 0) return;
    this.timer = setInterval(() => {
      if (this.running.size > 0) return;
      this.refreshOne().catch((e: unknown) => this.logger.warn({ msg: 'trial refresh failed', error: String(e) }));
    }, every);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
