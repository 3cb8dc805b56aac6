import { randomUUID } from 'node:crypto';
import { Injectable, Logger, Optional, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { ConflictError, NotFoundError, type NodeRecord, type WorkloadRecord } from '@spotlift/domain';
import { Clock, NodeOps, isFinished } from '@spotlift/engine';
import { intervalVerdict, planRebalance, startVerdict, type MoveStart, type PostCopyTrial } from '@spotlift/placement';
import {
  EvacuationRepository,
  MigrationRepository,
  NodeRepository,
  PairLinks,
  PostCopyTrials,
  WorkloadRepository,
} from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { EVACUATION_TRANSPORT, pairCapabilities } from '../evacuations/evacuation-capabilities.js';
import { MigrationsService } from '../migrations/migrations.service.js';
import type { EvaluateBody } from './rebalance-config.js';
import { buildRebalanceInput, pausedBy, type FreshCpu } from './rebalance-input.js';
import { RebalanceMetrics } from './rebalance-metrics.js';
import { ReleasableMarks } from './releasable-marks.js';
import { addPlanEvent, RebalanceStore, type PlanMove, type RebalancePlanRecord } from './rebalance-store.js';

/** How often an apply looks at its migrations and starts the next moves; its lease lasts a few of these. */
export const APPLY_POLL_MS = 1_000;
const LEASE_MS = 15_000;

/**
 * Capacity rebalancing (README "Capacity rebalancing"): evaluates the fleet on a schedule (one replica per tick,
 * a Redis claim per tick slot) and on demand, stores plans, applies one (once: a Redis claim per plan) by starting
 * its moves through MigrationsService.start within the budgets, and re-checks each move just before it starts:
 * a move whose node got a notice is cancelled, a stale one (the workload moved, stopped or became unmovable)
 * is skipped, each with its reason. A node consolidation emptied is marked `releasable`; spotlift never
 * terminates it.
 */
@Injectable()
export class RebalanceService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('rebalance');
  private readonly driving = new Set<Promise<void>>();
  private ticking: Promise<unknown> | undefined;
  private stopped = false;
  /** Applies run their steps in the background; unit specs turn this off and call `step` themselves. */
  driveInBackground = true;

  constructor(
    private readonly store: RebalanceStore,
    private readonly nodes: NodeRepository,
    private readonly workloads: WorkloadRepository,
    private readonly evacuations: EvacuationRepository,
    private readonly migrationRecords: MigrationRepository,
    private readonly migrations: MigrationsService,
    private readonly ops: NodeOps,
    private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly metrics: RebalanceMetrics,
    private readonly scheduler: SchedulerRegistry,
    private readonly marks: ReleasableMarks,
    @Optional() private readonly links?: PairLinks,
    @Optional() private readonly trials?: PostCopyTrials,
  ) {}

  onApplicationBootstrap(): void {
    const s = this.config.rebalance;
    // Worker roles evaluate on the schedule (they reach the nodes); every role answers the REST calls.
    if (s.mode === 'off' || !this.config.runsWorker) return;
    this.scheduler.addInterval(
      'rebalance',
      setInterval(() => void this.tick(), s.intervalMs),
    );
  }

  async onApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.scheduler.doesExist('interval', 'rebalance')) this.scheduler.deleteInterval('rebalance');
    await Promise.allSettled([this.ticking, ...this.driving]);
  }

  /** One schedule tick: evaluated by the one replica that claims the tick's slot. */
  tick(): Promise<unknown> {
    this.ticking ??= this.tickOnce()
      .catch((error: unknown) => this.logger.error({ msg: 'rebalance tick failed', error: String(error) }))
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  /** The plan this replica made in the tick, or undefined (another replica's tick, or a plan still applying). */
  async tickOnce(): Promise<RebalancePlanRecord | undefined> {
    const every = this.config.rebalance.intervalMs;
    const slot = Math.floor(this.clock.now().getTime() / every);
    if (!(await this.store.claimTick(slot, every * 2))) return undefined;
    const plans = await this.store.list();
    for (const p of plans.filter((x) => x.state === 'applying')) {
      if (await this.store.leaseHeld(p.id)) {
        this.logger.log({ msg: 'rebalance tick skipped: a plan is being applied', plan: p.id });
        return undefined;
      }
      await this.interrupted(p);
    }
    return this.evaluate('schedule');
  }

  async list(): Promise<RebalancePlanRecord[]> {
    return this.store.list();
  }

  async get(id: string): Promise<RebalancePlanRecord> {
    const plan = await this.store.get(id);
    if (!plan) throw new NotFoundError('rebalance plan', id);
    return plan;
  }

  /** Plans now with the configured policies (or the body's); in `auto` mode applies what it proposes. */
  async evaluate(trigger: 'schedule' | 'request', body: EvaluateBody = {}): Promise<RebalancePlanRecord> {
    const s = this.config.rebalance;
    if (s.mode === 'off') throw new ConflictError('rebalancing is off (config file rebalance.mode)');
    const now = this.clock.now();
    const fleet = await this.fleet();
    const { workloads, evacuations, history } = fleet;
    // A releasable node that runs work again (registered, migrated or evacuated there since) is not releasable.
    for (const n of fleet.nodes.filter(
      (x) => x.releasable && workloads.some((w) => w.nodeId === x.id && w.state !== 'gone'),
    ))
      await this.marks.clear(n.id, 'a workload runs on it');
    const nodes = await this.nodes.list();
    const [{ fresh, freshCpu }, measured] = await Promise.all([
      this.readNodes(nodes, workloads),
      this.measuredPairs(nodes),
    ]);
    const policies = body.policies ?? s.policies;
    const result = planRebalance(
      buildRebalanceInput({
        now,
        policies: policies as RebalancePlanRecord['policies'],
        nodes,
        workloads,
        evacuations,
        freshMemAvailable: fresh,
        freshCpu,
        ...measured,
        history,
        settings: s,
        evacuation: this.config.evacuation,
      }),
    );
    const plan: RebalancePlanRecord = {
      id: `rb-${now.toISOString().replace(/[-:]/g, '').slice(0, 15)}-${randomUUID().slice(0, 6)}`,
      createdAt: now.toISOString(),
      trigger,
      mode: s.mode,
      policies: policies as RebalancePlanRecord['policies'],
      state: 'proposed',
      summary: result.summary,
      totals: result.totals,
      moves: result.moves.map((m) => ({ ...m, state: 'proposed' })),
      skipped: result.skipped,
      releasable: result.releasable,
      released: [],
      ...(Object.keys(result.maxMovesFrom).length ? { maxMovesFrom: result.maxMovesFrom } : {}),
      events: [],
    };
    await this.store.add(plan, s.keepPlans);
    this.metrics.plans.inc({ trigger });
    this.logger.log({ msg: 'rebalance plan', plan: plan.id, trigger, summary: plan.summary });
    if (s.mode === 'auto' && plan.moves.length) return this.apply(plan.id, 'auto');
    return plan;
  }

  /**
   * What migrations measured between ready nodes, by source then destination: page throughput over `tls` as the
   * moves run (PairLinks; a pair never measured keeps the fleet figure), the post-copy trial the evacuation
   * planner reads (a pair never tried is `untested`), and each source's total outbound rate while several
   * migrations left it at once. Reads that fail leave the figure out: planning never waits on them.
   */
  private async measuredPairs(nodes: readonly NodeRecord[]): Promise<{
    pairBandwidth: Record<string, Record<string, number>>;
    pairPostCopyTrial: Record<string, Record<string, PostCopyTrial>>;
    nodeOutbound: Record<string, number>;
  }> {
    const ready = nodes.filter((n) => n.state === 'ready');
    const out = {
      pairBandwidth: {} as Record<string, Record<string, number>>,
      pairPostCopyTrial: {} as Record<string, Record<string, PostCopyTrial>>,
      nodeOutbound: {} as Record<string, number>,
    };
    if (!this.links && !this.trials) return out;
    await Promise.all(
      ready.map(async (source) => {
        const [pairs, outbound] = await Promise.all([
          pairCapabilities(source, ready, this.trials, this.links),
          this.links?.outbound(source.id, EVACUATION_TRANSPORT).catch(() => undefined),
        ]);
        const measured = Object.entries(pairs).flatMap(([id, p]) =>
          p.bandwidthBytesPerSec !== undefined ? [[id, p.bandwidthBytesPerSec] as const] : [],
        );
        if (measured.length) out.pairBandwidth[source.id] = Object.fromEntries(measured);
        const tried = Object.entries(pairs).filter(([, p]) => p.postCopyTrial !== 'untested');
        if (tried.length)
          out.pairPostCopyTrial[source.id] = Object.fromEntries(tried.map(([id, p]) => [id, p.postCopyTrial]));
        if (outbound) out.nodeOutbound[source.id] = outbound.bytesPerSec;
      }),
    );
    return out;
  }

  /**
   * Starts applying a proposed plan (409 for any other state, or when another caller claimed it first) and
   * returns at once; the moves run in the background within the budgets (GET the plan to follow them).
   */
  async apply(id: string, by: string): Promise<RebalancePlanRecord> {
    const plan = await this.get(id);
    if (plan.state !== 'proposed')
      throw new ConflictError(`plan '${id}' is ${plan.state}; only a proposed plan can be applied`);
    if (!plan.moves.length && !plan.releasable.length) throw new ConflictError(`plan '${id}' proposes nothing`);
    if (!(await this.store.claimApply(id, by))) throw new ConflictError(`plan '${id}' was already applied`);
    const now = this.clock.now();
    plan.state = 'applying';
    plan.appliedAt = now.toISOString();
    addPlanEvent(plan, now, `applied by ${by}`);
    await this.store.holdLease(id, LEASE_MS);
    await this.store.save(plan);
    if (this.driveInBackground) {
      const run = this.drive(id).finally(() => this.driving.delete(run));
      this.driving.add(run);
    }
    return plan;
  }

  /** Cancels what has not started (a proposed plan entirely); moves already running finish. */
  async cancel(id: string, by: string): Promise<RebalancePlanRecord> {
    const plan = await this.get(id);
    if (plan.state === 'applying') {
      await this.store.requestCancel(id);
      return plan;
    }
    if (plan.state !== 'proposed') throw new ConflictError(`plan '${id}' is ${plan.state}; nothing to cancel`);
    // The apply claim doubles as the cancel's: a plan is either applied or cancelled, never both.
    if (!(await this.store.claimApply(id, `cancel:${by}`)))
      throw new ConflictError(`plan '${id}' is being applied; cancel again to stop its moves`);
    const now = this.clock.now();
    for (const m of plan.moves) Object.assign(m, { state: 'cancelled', detail: `plan cancelled by ${by}` });
    plan.state = 'cancelled';
    plan.finishedAt = now.toISOString();
    addPlanEvent(plan, now, `cancelled by ${by}`);
    await this.store.save(plan);
    return plan;
  }

  /** The stored fleet both an evaluation and each apply step judge moves on. */
  private async fleet() {
    const [nodes, workloads, evacuations, history] = await Promise.all([
      this.nodes.list(),
      this.workloads.list(),
      this.evacuations.list(),
      this.store.history(),
    ]);
    return { nodes, workloads, evacuations, history };
  }

  /** MemAvailable and CPU use (the node's and each running workload's) read now, where the node answers. */
  private async readNodes(nodes: readonly NodeRecord[], workloads: readonly WorkloadRecord[]) {
    const fresh: Record<string, number> = {};
    const freshCpu: Record<string, FreshCpu> = {};
    await Promise.all(
      nodes
        .filter((n) => n.state === 'ready')
        .map(async (n) => {
          const mine = workloads.filter((w) => w.nodeId === n.id && w.state === 'running');
          const [bytes, cpu] = await Promise.all([
            this.ops.memAvailableBytes(n, 1_000),
            this.ops.cpuSample(
              n,
              mine.map((w) => w.pid),
              3_000,
            ),
          ]);
          if (bytes !== undefined) fresh[n.id] = bytes;
          if (cpu)
            freshCpu[n.id] = {
              busyCpus: cpu.busyCpus,
              cpuCount: cpu.cpuCount,
              workloads: Object.fromEntries(
                mine.filter((w) => cpu.pids[w.pid] !== undefined).map((w) => [w.id, cpu.pids[w.pid]!]),
              ),
            };
        }),
    );
    return { fresh, freshCpu };
  }

  private async drive(id: string): Promise<void> {
    try {
      while (!this.stopped && !(await this.step(id))) await new Promise((r) => setTimeout(r, APPLY_POLL_MS));
    } catch (error) {
      this.logger.error({ msg: 'rebalance apply failed', plan: id, error: String(error) });
    }
  }

  /** One pass of an apply: collects ended moves, cancels or skips what cannot start, starts what the budgets allow. True when done. */
  async step(id: string): Promise<boolean> {
    const plan = await this.store.get(id);
    if (!plan || plan.state !== 'applying') return true;
    await this.store.holdLease(id, LEASE_MS);
    const now = this.clock.now();
    const { nodes, workloads, evacuations, history } = await this.fleet();
    await this.collect(plan, now);
    const cancelled = await this.store.cancelRequested(id);
    let running = plan.moves.filter((m) => m.state === 'started').length;
    // Moves under way per source: no more leave one node at once than its measured outbound rate carries.
    const leaving = new Map<string, number>();
    for (const m of plan.moves.filter((x) => x.state === 'started'))
      leaving.set(m.fromNodeId, (leaving.get(m.fromNodeId) ?? 0) + 1);
    for (const m of plan.moves.filter((x) => x.state === 'proposed')) {
      if (cancelled) {
        this.end(plan, m, 'cancelled', 'plan cancelled', now);
        continue;
      }
      const byId = new Map(nodes.map((n) => [n.id, n]));
      const pause = [byId.get(m.fromNodeId), byId.get(m.toNodeId)]
        .map((n) =>
          n
            ? (pausedBy(n, evacuations) ?? (n.releasable ? `node ${n.id} is releasable` : undefined))
            : 'a node is gone',
        )
        .find(Boolean);
      if (pause) {
        this.end(plan, m, 'cancelled', `paused: ${pause}`, now);
        continue;
      }
      const stale = staleReason(
        m,
        workloads.find((w) => w.id === m.workloadId),
      );
      const interval = intervalVerdict(this.config.rebalance.budgets, history, m.workloadId, now);
      if (stale || interval) {
        this.end(plan, m, 'skipped', `stale: ${stale ?? interval}`, now);
        continue;
      }
      const cap = plan.maxMovesFrom?.[m.fromNodeId];
      if (cap !== undefined && (leaving.get(m.fromNodeId) ?? 0) >= cap) continue; // waits for one to end there
      const budget = startVerdict(this.config.rebalance.budgets, history, now, 0, running);
      if (budget && running > 0) break; // wait for a running move to end
      if (budget) {
        this.end(plan, m, 'skipped', `budget: ${budget}`, now);
        continue;
      }
      if (await this.start(plan, m, workloads, history, now)) {
        running += 1;
        leaving.set(m.fromNodeId, (leaving.get(m.fromNodeId) ?? 0) + 1);
      }
    }
    await this.release(plan, nodes, now);
    const done = !plan.moves.some((m) => m.state === 'proposed' || m.state === 'started');
    if (done) {
      plan.state = cancelled ? 'cancelled' : 'applied';
      plan.finishedAt = now.toISOString();
      addPlanEvent(plan, now, `${plan.state}: ${countBy(plan.moves)}`);
    }
    await this.store.save(plan);
    return done;
  }

  private async start(
    plan: RebalancePlanRecord,
    m: PlanMove,
    workloads: readonly WorkloadRecord[],
    history: MoveStart[],
    now: Date,
  ): Promise<boolean> {
    const w = workloads.find((x) => x.id === m.workloadId)!;
    try {
      const rec = await this.migrations.start({
        workloadId: m.workloadId,
        destinationNodeId: m.toNodeId,
        strategy: m.strategy === 'restart' ? 'auto' : m.strategy,
        transport: 'tls',
        keepImages: false,
        ...(w.maxDowntimeMs !== undefined ? { downtimeBudgetMs: w.maxDowntimeMs } : {}),
      });
      Object.assign(m, { state: 'started', migrationId: rec.id, startedAt: now.toISOString() });
      const start = { workloadId: m.workloadId, at: now.getTime(), migrationId: rec.id };
      history.push(start);
      await this.store.recordStart(start);
      addPlanEvent(plan, now, `${m.workloadId}: ${m.fromNodeId} -> ${m.toNodeId} started (${rec.id})`);
      return true;
    } catch (error) {
      // Refused before anything froze (busy, gone, destination now unfit): the move is skipped, the plan goes on.
      this.end(plan, m, 'skipped', `not started: ${(error as Error).message}`, now);
      return false;
    }
  }

  private async collect(plan: RebalancePlanRecord, now: Date): Promise<void> {
    for (const m of plan.moves.filter((x) => x.state === 'started' && x.migrationId)) {
      const rec = await this.migrationRecords.get(m.migrationId!);
      if (!rec || !isFinished(rec)) continue;
      if (rec.downtimeMs !== undefined) {
        m.downtimeMs = rec.downtimeMs;
        this.metrics.downtime.inc({ policy: m.policy }, rec.downtimeMs / 1000);
      }
      if (rec.state === 'completed') this.end(plan, m, 'completed', `migration ${rec.id} completed`, now);
      else this.end(plan, m, 'failed', `migration ${rec.id} ${rec.state}${rec.error ? `: ${rec.error}` : ''}`, now);
    }
  }

  /** Marks each node the plan set out to empty releasable once its moves all completed and nothing runs there. */
  private async release(plan: RebalancePlanRecord, nodes: readonly NodeRecord[], now: Date): Promise<void> {
    for (const nodeId of plan.releasable.filter((n) => !plan.released.includes(n))) {
      const own = plan.moves.filter((m) => m.fromNodeId === nodeId && m.policy === 'consolidate');
      if (own.some((m) => m.state === 'proposed' || m.state === 'started')) continue;
      const node = nodes.find((n) => n.id === nodeId);
      const left = (await this.workloads.list()).filter((w) => w.nodeId === nodeId && w.state !== 'gone');
      const failed = own.filter((m) => m.state !== 'completed');
      if (!node || failed.length || left.length || pausedBy(node, [])) {
        if (!plan.events.some((e) => e.msg.startsWith(`node ${nodeId} stays`)))
          addPlanEvent(
            plan,
            now,
            `node ${nodeId} stays: ${failed.length} move(s) did not complete, ${left.length} workload(s) on it`,
          );
        continue;
      }
      await this.marks.mark(nodeId, plan.id);
      plan.released.push(nodeId);
      this.metrics.released.inc();
      addPlanEvent(plan, now, `node ${nodeId} is empty: marked releasable`);
      this.logger.log({ msg: 'node releasable', node: nodeId, plan: plan.id });
      void this.notify(nodeId, plan.id, now);
    }
  }

  private async notify(node: string, planId: string, at: Date): Promise<void> {
    const url = this.config.rebalance.releasableWebhook;
    if (!url) return;
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ node, planId, at: at.toISOString(), releasable: true }),
        signal: AbortSignal.timeout(5_000),
      });
      if (!res.ok) this.logger.warn({ msg: 'releasable webhook refused', node, status: res.status });
    } catch (error) {
      this.logger.warn({ msg: 'releasable webhook failed', node, error: (error as Error).message });
    }
  }

  private end(plan: RebalancePlanRecord, m: PlanMove, state: PlanMove['state'], detail: string, now: Date): void {
    Object.assign(m, { state, detail, endedAt: now.toISOString() });
    this.metrics.moves.inc({ policy: m.policy, outcome: state });
    if (state !== 'completed') addPlanEvent(plan, now, `${m.workloadId}: ${state}: ${detail}`);
  }

  /** A plan left `applying` by a process that stopped: what had not started will not. */
  private async interrupted(plan: RebalancePlanRecord): Promise<void> {
    const now = this.clock.now();
    for (const m of plan.moves.filter((x) => x.state === 'proposed'))
      this.end(plan, m, 'skipped', 'the applying process stopped', now);
    plan.state = 'interrupted';
    plan.finishedAt = now.toISOString();
    addPlanEvent(plan, now, 'interrupted: the applying process stopped (its lease expired)');
    await this.store.save(plan);
  }
}

/** Why a move no longer makes sense, judged on the workload as it is now. */
export function staleReason(m: PlanMove, w: WorkloadRecord | undefined): string | undefined {
  if (!w) return `workload '${m.workloadId}' is no longer registered`;
  if (w.state !== 'running') return `workload '${w.id}' is ${w.state}`;
  if (w.nodeId !== m.fromNodeId) return `workload '${w.id}' is on ${w.nodeId} now, not ${m.fromNodeId}`;
  if (w.movable === false) return `workload '${w.id}' is movable: false now`;
  return undefined;
}

function countBy(moves: readonly PlanMove[]): string {
  const counts = new Map<string, number>();
  for (const m of moves) counts.set(m.state, (counts.get(m.state) ?? 0) + 1);
  return [...counts].map(([k, v]) => `${v} ${k}`).join(', ') || 'no moves';
}
