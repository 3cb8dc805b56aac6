import { Injectable, Logger, Optional } from '@nestjs/common';
import {
  DomainError,
  evacuationFinished,
  type EvacuationJob,
  decideShortNotice,
  type EvacuationRecord,
  type MigrationRecord,
  type NodeRecord,
  type Strategy,
} from '@spotlift/domain';
import { Clock, NodeOps } from '@spotlift/engine';
import {
  planEvacuation,
  replan,
  type EvacuationInput,
  type CandidateNode,
  type EvacuationPlan,
  type FinishedJob,
} from '@spotlift/placement';
import {
  CheckpointRepository,
  EvacuationRepository,
  MigrationRepository,
  NodeRepository,
  PairLinks,
  PostCopyTrials,
  WorkloadRepository,
  checkpointsOfWorkload,
  migrationsInFlight,
  newestCompletedMigrations,
  workloadsOnNode,
} from '@spotlift/store';
import { CheckpointsService, CreateCheckpoint } from '../checkpoints/checkpoints.service.js';
import { AppConfig } from '../config/app-config.js';
import { DestinationRefused, MigrationsService } from '../migrations/migrations.service.js';
import { buildEvacuationInput, planAsExecuted, strategyFor, workloadsInScope } from './evacuation-input.js';
import {
  applyPlan,
  jobInFlight,
  jobsFromPlan,
  migrationEnded,
  outcomeOf,
  predictedMissesOf,
} from './evacuation-jobs.js';
import { addEvent, appendEvents } from './evacuation-events.js';
import { executedPlan } from './evacuation-executed.js';
import { calibrateFromMigrations } from './evacuation-calibration.js';
import { PairTrials, trialable } from './pair-trials.js';
import { pairCapabilities, type PairCapability } from './evacuation-capabilities.js';
import { EvacuationSignals } from './evacuation-signals.js';
import { freshMemoryCandidates } from './fresh-memory.js';
import { sharedRead, sharedReadBy } from '../common/shared-read.js';
import { EvacuationGuardPath, guardRestoreWaiting, isGuardRestore } from './evacuation-guard-path.js';

/**
 * The coordinator waits for signals (EvacuationSignals: a migration or checkpoint job ended, a notice changed
 * the record), not on a timer. A signal can be lost: the queues' event streams live in Redis, and a Redis that
 * restarted (empty, or down while a job ended) never delivers it. So it also looks again after this long
 * without one: a safety net, slow on purpose.
 */
export const SAFETY_NET_MS = 5_000;
/** Post-copy and hybrid: resume to every page in, as the migration measured it. */
const allPagesMs = (m: MigrationRecord): number | undefined =>
  m.postCopy?.pagesAfterResumeMs ?? m.precopy?.lazyFill?.pagesAfterResumeMs;
/**
 * When a move stopped needing its source: a lazy move (post-copy, hybrid) when its last page arrived (the source
 * serves pages until then: a node gone before that loses the workload), any other at resume.
 */
const sourceFreedAt = (m: MigrationRecord): string => {
  const fill = allPagesMs(m);
  if (m.resumedAt && fill !== undefined) return new Date(Date.parse(m.resumedAt) + fill).toISOString();
  return m.resumedAt ?? m.updatedAt;
};
/** Completed migrations read for the calibration (it keeps the newest 20 samples among them). */
const CALIBRATION_READ = 200;
const CALIBRATION_MAX_AGE_MS = 5_000;
/** A node's MemAvailable read for one plan serves the plans made within this long (see memAvailableOf). */
const FRESH_MEMORY_MAX_AGE_MS = 2_000;
/** A job's destination refused at its start (out of placement since the plan) is replaced at most this many times in a row. */
const MAX_DESTINATION_CHANGES = 4;
/** A failed workload is tried on at most this many destinations. */
const MAX_ATTEMPTS = 2;
/** Stop waiting for migrations this long after the deadline (the node is gone; their jobs end on their own). */
const AFTER_DEADLINE_MS = 5 * 60_000;
/** What a plan line may ask for; anything else (an older plan's word) falls back to the default. */
const STRATEGIES: ReadonlySet<string> = new Set<Strategy>(['stop-and-copy', 'pre-copy', 'post-copy', 'hybrid', 'auto']);
/**
 * The record's fields this coordinator writes. The others are other writers': a notice joining (another
 * replica: `otherNotices`, `deadlineChanges`, `deadline`), the cordon, an Azure approval. Every save applies
 * these fields, the events this coordinator added and its re-plan marks to the record as stored at that moment
 * (a versioned update), so nobody's write is lost and nobody's fields are copied by hand.
 */
const OWNED = [
  'state',
  'plannedAt',
  'plan',
  'replans',
  'jobs',
  'predictedMisses',
  'storageNote',
  'outcome',
  'finishedAt',
  'executed',
] as const;

/**
 * Runs one evacuation to its end, inside the `evacuate` job of whichever worker holds it. Re-entrant:
 * everything it decides is in the record, so a worker that picks up a stalled job carries on from there.
 */
@Injectable()
export class EvacuationCoordinator {
  private readonly logger = new Logger('evacuations');
  /** Guarded workloads the notice is too short for (issue 15): their guard path, as the plan chose it. */
  private readonly guardPath: EvacuationGuardPath;

  constructor(
    private readonly evacuations: EvacuationRepository,
    private readonly migrations: MigrationRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly migrationsService: MigrationsService,
    private readonly clock: Clock,
    private readonly config: AppConfig,
    private readonly checkpointsService: CheckpointsService,
    private readonly checkpoints: CheckpointRepository,
    private readonly signals: EvacuationSignals,
    /** Post-copy trials and page throughput measured per pair (absent in unit tests: the fleet's figures). */
    @Optional() private readonly trials?: PostCopyTrials,
    @Optional() private readonly links?: PairLinks,
    /** Runs missing post-copy trials when there is slack (absent in unit tests: trials are never run). */
    @Optional() private readonly pairTrials?: PairTrials,
  ) {
    this.guardPath = new EvacuationGuardPath(checkpointsService, checkpoints, clock);
  }

  /**
   * The fleet-wide reads of a plan, made once for every plan that asks while one is under way: ten notices at
   * 1,000 nodes planned at once read the nodes ten times over (megabytes on the one Redis client), and every
   * command queued behind those replies (lease renewals, the API) timed out at 1 s. A plan joining a read
   * started a moment before it asked sees what it would have seen with that moment's read: concurrent plans
   * race for destinations either way (the capacity checks at start settle it). The rest of a plan's reads
   * are the source's own records, from the indexes (record-queries.ts).
   */
  private readonly fleet = {
    nodes: sharedRead(() => this.nodes.list()),
    inFlight: sharedRead(() => this.reservations()),
    // Changes only when a migration completes; a few seconds old says the same (and spares reading hundreds).
    calibration: sharedRead(
      async () => calibrateFromMigrations(await newestCompletedMigrations(this.migrations, CALIBRATION_READ)),
      CALIBRATION_MAX_AGE_MS,
      () => this.clock.now().getTime(),
    ),
  };

  async run(evacuationId: string, signal?: AbortSignal): Promise<EvacuationRecord | undefined> {
    let rec = await this.evacuations.get(evacuationId);
    if (!rec || evacuationFinished(rec)) return rec;
    /** The events already stored: a save appends only the ones added since. */
    let read = new Set<object>(rec.events);
    if (!rec.plan) {
      await this.planFirst(rec);
      rec = await this.save(rec, read);
    }
    while (!signal?.aborted) {
      const seen = this.signals.generation;
      // Fresh each time: what other writers changed (an earlier deadline) is in it.
      rec = (await this.evacuations.get(evacuationId)) ?? rec;
      read = new Set(rec.events);
      const now = this.clock.now().getTime();
      const replanned = this.followDeadline(rec, now);
      const deadline = new Date(rec.deadline).getTime();
      const ended = await this.collectEnded(rec);
      const checkpointsEnded = await this.collectCheckpoints(rec);
      const guardMoved = await this.guardPath.advance(rec);
      if (ended.length > 0) await this.replanAfter(rec, ended, now);
      const planDeadline = this.planDeadline(rec);
      if (now >= planDeadline)
        this.giveUpPending(rec, 'the deadline (less the safety margin) came before it could start');
      else await this.startNext(rec);
      if (now < deadline) {
        await this.guardPath.start(rec);
        await this.startCheckpoints(rec);
      } else await this.guardPath.giveUp(rec);
      const checkpointing = rec.jobs.some(
        (j) => j.state === 'checkpointing' || j.state === 'restoring' || (now < deadline && guardRestoreWaiting(j)),
      );
      const open = checkpointing || rec.jobs.some((j) => j.state === 'pending' || jobInFlight(j));
      if (replanned || ended.length > 0 || checkpointsEnded || guardMoved || open) {
        rec.executed = executedPlan(rec, this.clock.now());
        rec = await this.save(rec, read);
        read = new Set(rec.events);
      }
      if (!open) break;
      if (now > deadline + AFTER_DEADLINE_MS) {
        addEvent(rec, this.clock.now(), 'gave up waiting for migrations still running long after the deadline');
        break;
      }
      const wakeAt = [planDeadline, deadline + AFTER_DEADLINE_MS + 1].filter((t) => t > now);
      await this.signals.next(seen, Math.min(SAFETY_NET_MS, ...wakeAt.map((t) => t - now)), signal);
    }
    if (signal?.aborted) return rec;
    const { state, outcome } = outcomeOf(rec);
    Object.assign(rec, { state, outcome, finishedAt: this.clock.now().toISOString() });
    rec.executed = executedPlan(rec, this.clock.now());
    addEvent(rec, this.clock.now(), `finished ${state}: ${outcome.summary}`);
    rec = await this.save(rec, read);
    this.logger.log({ msg: 'evacuation finished', evacuation: rec.id, node: rec.nodeId, state, ...outcome });
    return rec;
  }

  /** The plan's own deadline: the notice's, less the safety margin, as planned (epoch ms). */
  private planDeadline(rec: EvacuationRecord): number {
    return new Date(rec.plannedAt!).getTime() + (rec.plan?.deadlineSeconds ?? 0) * 1000;
  }

  private async planFirst(rec: EvacuationRecord): Promise<void> {
    let now = this.clock.now();
    const source = await this.nodes.get(rec.nodeId);
    if (!source) throw new Error(`evacuation ${rec.id}: node '${rec.nodeId}' does not exist`);
    // The source's own records from the indexes; the nodes whole (every one is a destination to weigh).
    const [onSource, nodes, reservedByNode, calibration] = await Promise.all([
      workloadsOnNode(this.workloads, source.id),
      this.fleet.nodes(),
      this.fleet.inFlight(),
      this.fleet.calibration(),
    ]);
    const onNode = workloadsInScope(
      rec,
      onSource.filter((w) => w.state === 'running'),
    );
    const busy = onSource.filter((w) => w.state === 'migrating');
    const [freshMemAvailable, checkpoints] = await Promise.all([
      this.readMemAvailable(freshMemoryCandidates(nodes, source.id)),
      Promise.all(onNode.map((w) => checkpointsOfWorkload(this.checkpoints, w.id))).then((x) => x.flat()),
    ]);
    const inputAt = (at: Date, pairs: Record<string, PairCapability>) =>
      buildEvacuationInput({
        deadline: new Date(rec.deadline),
        now: at,
        source,
        workloads: onNode,
        nodes,
        freshMemAvailable,
        reservedByNode,
        settings: this.config.evacuation,
        pairs,
        calibration,
        checkpoints,
      });
    const pairs = await pairCapabilities(source, nodes, this.trials, this.links);
    const input = inputAt(now, pairs);
    let plan = planEvacuation(input);
    const tried = await this.trialsFirst(rec, source, nodes, input, plan, pairs);
    if (tried) {
      now = this.clock.now();
      plan = planEvacuation(inputAt(now, await pairCapabilities(source, nodes, this.trials, this.links)));
    }
    rec.plannedAt = now.toISOString();
    rec.plan = plan;
    rec.jobs = jobsFromPlan(plan, onNode);
    rec.predictedMisses = predictedMissesOf(plan);
    rec.state = 'running';
    if (calibration.perMigrationOverheadSeconds !== undefined)
      addEvent(
        rec,
        now,
        `model calibrated from ${calibration.samples} completed migration(s) (stop-and-copy, post-copy, hybrid): ${calibration.perMigrationOverheadSeconds.toFixed(2)} s without pages per migration, ${calibration.fixedCostSeconds!.toFixed(2)} s of freeze without pages` +
          (calibration.lazyFillBytesPerSec
            ? `, lazy pages filled at ${(calibration.lazyFillBytesPerSec / 2 ** 20).toFixed(0)} MiB/s (x${(input.strategyModel?.lazyTransferFactor ?? 1).toFixed(2)} a stream's time)`
            : ''),
      );
    addEvent(rec, now, `planned: ${plan.summary}`);
    if (busy.length)
      addEvent(rec, now, `already migrating, left to their own migrations: ${busy.map((w) => w.id).join(', ')}`);
    if (rec.predictedMisses.length) {
      const storage = this.config.evacuation.storageNodeId;
      const guarded = rec.predictedMisses.filter(
        (m) => m.fallback === 'guard-restore' || m.fallback === 'guard-checkpoint',
      );
      const rest = rec.predictedMisses.length - guarded.length;
      const guardNote = guarded.length
        ? `${guarded.length} guarded workload(s) cannot move live in time: they take the guard path (${guarded.map((m) => `${m.workloadId}: ${m.fallback}`).join(', ')})`
        : '';
      const restNote = !rest
        ? ''
        : storage
          ? `${rest} workload(s) cannot reach a destination in time: they are checkpointed to storage node '${storage}' (restorable later with POST /checkpoints/:id/restore)`
          : `${rest} workload(s) cannot reach a destination in time and no storage node is configured: they will be lost with the node`;
      rec.storageNote = [restNote, guardNote].filter(Boolean).join('; ');
      addEvent(rec, now, rec.storageNote);
    }
    this.logger.log({ msg: 'evacuation planned', evacuation: rec.id, node: rec.nodeId, summary: plan.summary });
  }

  /**
   * With slack, the missing post-copy trials of the source's pairs run first (bounded by `trialBudgetSeconds`),
   * so the plan can choose post-copy; without slack (a predicted miss, or the plan would end within the budget
   * of the deadline) nothing runs and the record says why. When every usable pair's trial was stored ahead of
   * the notice (PairTrials), the record says that too, with each trial's time. True when trials ran (the plan
   * is then made again).
   */
  private async trialsFirst(
    rec: EvacuationRecord,
    source: NodeRecord,
    nodes: readonly NodeRecord[],
    input: EvacuationInput,
    plan: EvacuationPlan,
    pairs: Readonly<Record<string, PairCapability>>,
  ): Promise<boolean> {
    const budget = this.config.evacuation.trialBudgetSeconds;
    const untested = input.destinations.filter((d) => d.postCopyTrial === 'untested').map((d) => d.id);
    const targets = nodes.filter((n) => untested.includes(n.id) && trialable(n)).slice(0, 4);
    if (targets.length === 0 && input.workloads.length > 0) this.sayTrialsStored(rec, source, input, pairs);
    if (!this.pairTrials || budget <= 0 || targets.length === 0 || input.workloads.length === 0) return false;
    const at = this.clock.now();
    const names = targets.map((n) => `${source.id}->${n.id}`).join(', ');
    const slack = input.deadlineSeconds - plan.objective.makespanSeconds;
    if (plan.predictedMisses > 0 || slack < budget) {
      addEvent(
        rec,
        at,
        `no post-copy trial for ${names}: no slack (${plan.predictedMisses} predicted miss(es), ${slack.toFixed(1)} s left after the plan, a trial may take ${budget} s)`,
      );
      return false;
    }
    const r = await this.pairTrials.runMissing(source, targets, budget * 1000);
    const said = r.done.map(
      (t) =>
        `${t.sourceNodeId}->${t.destinationNodeId} ${t.ok ? 'ok' : `failed (${t.advice ?? t.reason ?? ''})`} in ${(t.durationMs / 1000).toFixed(1)} s`,
    );
    if (r.unfinished.length) said.push(`${r.unfinished.join(', ')} not done within ${budget} s (planned as untested)`);
    addEvent(
      rec,
      this.clock.now(),
      `slack of ${slack.toFixed(1)} s: ran the missing post-copy trials first: ${said.join('; ')}`,
    );
    return true;
  }

  /** Why no trial runs first: the destinations' trials were stored before the notice (ran ahead of it). */
  private sayTrialsStored(
    rec: EvacuationRecord,
    source: NodeRecord,
    input: EvacuationInput,
    pairs: Readonly<Record<string, PairCapability>>,
  ): void {
    const noticeAt = Date.parse(rec.notice.receivedAt);
    const stored = input.destinations.flatMap((d) => {
      const p = pairs[d.id];
      if (!p?.trialAt) return [];
      const ahead = (noticeAt - Date.parse(p.trialAt)) / 1000;
      const when = ahead >= 0 ? `${ahead.toFixed(1)} s before the notice` : `${(-ahead).toFixed(1)} s after it`;
      return [`${source.id}->${d.id} ${p.postCopyTrial} at ${p.trialAt} (${when})`];
    });
    if (stored.length)
      addEvent(
        rec,
        this.clock.now(),
        `no post-copy trial run first: every pair's trial is stored: ${stored.join('; ')}`,
      );
  }

  /** Memory the migrations in flight will take on their destinations (their workloads' RSS), by node. */
  private async reservations(): Promise<Record<string, number>> {
    const inFlight = await migrationsInFlight(this.migrations);
    const workloads = await Promise.all(inFlight.map((m) => this.workloads.get(m.workloadId)));
    const reservedByNode: Record<string, number> = {};
    inFlight.forEach((m, i) => {
      reservedByNode[m.destinationNodeId] = (reservedByNode[m.destinationNodeId] ?? 0) + (workloads[i]?.rssBytes ?? 0);
    });
    return reservedByNode;
  }

  /**
   * MemAvailable of one node over SSH (1 s cap), one read for every plan that asks within FRESH_MEMORY_MAX_AGE_MS:
   * fifty notices at once chose mostly the same roomiest nodes, and read each of them fifty times over (800
   * execs before their first freezes). Memory that moves since is in the reservations, read fresh per plan.
   */
  private readonly memAvailableOf = sharedReadBy(
    (node: NodeRecord) => node.id,
    (node) => this.ops.memAvailableBytes(node, 1_000),
    FRESH_MEMORY_MAX_AGE_MS,
    () => this.clock.now().getTime(),
  );

  /** MemAvailable read over SSH (in parallel, see memAvailableOf); a node that does not answer keeps its probe. */
  private async readMemAvailable(nodes: readonly NodeRecord[]): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    await Promise.all(
      nodes.map(async (n) => {
        const bytes = await this.memAvailableOf(n);
        if (bytes !== undefined) out[n.id] = bytes;
      }),
    );
    return out;
  }

  /** Reads the migrations in flight; copies the ends (state, downtime) into their jobs. */
  private async collectEnded(rec: EvacuationRecord): Promise<FinishedJob[]> {
    const ended: FinishedJob[] = [];
    const deadline = new Date(rec.deadline).getTime();
    for (const job of rec.jobs.filter(jobInFlight)) {
      const m = await this.migrations.get(job.migrationId!);
      if (!m) continue;
      if (!migrationEnded(m)) {
        job.state = m.state;
        continue;
      }
      const endedAt = sourceFreedAt(m);
      Object.assign(job, {
        state: m.state,
        endedAt,
        beforeDeadline: new Date(endedAt).getTime() <= deadline,
        ...(m.downtimeMs !== undefined ? { downtimeMs: m.downtimeMs } : {}),
        ...(m.frozenAt ? { frozenAt: m.frozenAt } : {}),
        ...(m.resumedAt ? { resumedAt: m.resumedAt } : {}),
        ...(m.error ? { error: m.error } : {}),
        ...(allPagesMs(m) !== undefined ? { timeToAllPagesMs: allPagesMs(m) } : {}),
      });
      ended.push({ workloadId: job.workloadId, outcome: m.state === 'completed' ? 'completed' : 'failed' });
    }
    return ended;
  }

  private async replanAfter(rec: EvacuationRecord, ended: FinishedJob[], now: number): Promise<void> {
    const plannedAt = new Date(rec.plannedAt!);
    const stored = rec.plan as unknown as EvacuationPlan; // the record keeps the placement plan whole
    try {
      const input = { ...stored.input, destinations: await this.statesNow(stored.input.destinations) };
      const asExecuted = planAsExecuted({ ...stored, input }, rec.jobs, plannedAt);
      const next = replan(asExecuted, ended, (now - plannedAt.getTime()) / 1000);
      rec.plan = next;
      rec.replans += 1;
      applyPlan(rec.jobs, next, MAX_ATTEMPTS);
    } catch (error) {
      // A re-plan that cannot be made leaves the last plan in force; the jobs still run.
      addEvent(rec, new Date(now), `re-plan failed: ${(error as Error).message}`);
    }
  }

  /**
   * The plan's destinations with their states as stored now: a re-plan must not send a failed move to a node
   * that a notice (or an operator) took out of placement since the plan was made. Fifty notices at once at
   * 1,000 nodes: plans made in the same second chose nodes whose own notices came a moment later, and a re-plan
   * from the plan's copy sent the retry to the next of them. Memory and the rest stay as planned (the plan's
   * ledger accounts for its own moves).
   */
  private async statesNow(destinations: readonly CandidateNode[]): Promise<CandidateNode[]> {
    // A node that cannot be read now keeps its planned state; one deleted since is gone.
    const states = await Promise.all(
      destinations.map((d) =>
        this.nodes.get(d.id).then(
          (n) => n?.state ?? 'gone',
          () => d.state,
        ),
      ),
    );
    return destinations.map((d, i) => (states[i] === d.state ? d : { ...d, state: states[i]! }));
  }

  /**
   * A later notice moved the deadline earlier (EvacuationsService.join writes it to the stored record, which
   * this tick read): take it, and re-plan what has not started with the time now left. Running jobs keep their
   * destinations. True when it re-planned (the record needs saving).
   */
  private followDeadline(rec: EvacuationRecord, now: number): boolean {
    const pending = (rec.deadlineChanges ?? []).filter((c) => !c.replannedAt);
    if (!pending.length) return false;
    const latest = pending.reduce((a, b) => (Date.parse(b.to) < Date.parse(a.to) ? b : a));
    if (Date.parse(latest.to) < Date.parse(rec.deadline)) rec.deadline = latest.to;
    const at = new Date(now);
    if (rec.plan && rec.plannedAt) {
      const plannedAt = new Date(rec.plannedAt);
      const stored = rec.plan as unknown as EvacuationPlan;
      const deadlineSeconds = Math.max(
        0,
        (Date.parse(rec.deadline) - plannedAt.getTime()) / 1000 - this.config.evacuation.safetyMarginSeconds,
      );
      try {
        const asExecuted = planAsExecuted(stored, rec.jobs, plannedAt);
        const next = replan(
          { ...asExecuted, input: { ...asExecuted.input, deadlineSeconds } },
          [],
          (now - plannedAt.getTime()) / 1000,
        );
        rec.plan = next;
        rec.replans += 1;
        applyPlan(rec.jobs, next, MAX_ATTEMPTS);
        addEvent(rec, at, `re-planned for the earlier deadline ${rec.deadline}: ${next.summary}`);
      } catch (error) {
        addEvent(rec, at, `re-plan for the earlier deadline failed: ${(error as Error).message}`);
      }
    }
    for (const c of pending) c.replannedAt = at.toISOString();
    this.logger.warn({
      msg: 'evacuation re-planned for an earlier deadline',
      evacuation: rec.id,
      deadline: rec.deadline,
    });
    return true;
  }

  /**
   * Missed jobs whose plan line says `checkpoint-to-storage`: one checkpoint each, started at once (the
   * storage node is the one place they can still go before the node does).
   */
  private async startCheckpoints(rec: EvacuationRecord): Promise<void> {
    const due = rec.jobs.filter(
      (j) => j.state === 'missed' && j.fallback === 'checkpoint-to-storage' && j.checkpointId === undefined,
    );
    for (const job of due) {
      if (await this.guardStandsIn(rec, job)) continue;
      try {
        const cp = await this.checkpointsService.create(
          CreateCheckpoint.parse({
            workload: job.workloadId,
            ...(job.fallbackNodeId ? { storage: job.fallbackNodeId } : {}),
          }),
          { evacuationId: rec.id },
        );
        Object.assign(job, { state: 'checkpointing', checkpointId: cp.id, startedAt: cp.createdAt });
        addEvent(rec, this.clock.now(), `checkpointing ${job.workloadId} to ${cp.storageNodeId} as ${cp.id}`);
      } catch (error) {
        // Marked as tried (no id), so it is not tried again every tick.
        Object.assign(job, { checkpointId: '', error: `checkpoint not started: ${(error as Error).message}` });
        addEvent(rec, this.clock.now(), `could not checkpoint ${job.workloadId}: ${(error as Error).message}`);
        await this.guardStandsIn(rec, job, `the final checkpoint did not start (${(error as Error).message})`);
      }
    }
  }

  /**
   * A guarded workload the plan misses (short-notice.ts): its last guard checkpoint stands in when a final
   * checkpoint does not fit before the deadline (true: the job is `checkpointed` with it and its RPO), or when
   * the final one failed (`failed`: why). False: a final checkpoint is to be taken (or there is no guard one).
   */
  private async guardStandsIn(rec: EvacuationRecord, job: EvacuationJob, failed?: string): Promise<boolean> {
    const workload = await this.workloads.get(job.workloadId).catch(() => undefined);
    if (!workload?.guard) return false;
    const now = this.clock.now();
    const checkpoints = await checkpointsOfWorkload(this.checkpoints, workload.id);
    const secondsLeft = (Date.parse(rec.deadline) - now.getTime()) / 1000 - this.config.evacuation.safetyMarginSeconds;
    const decision = decideShortNotice({
      checkpoints,
      // A final checkpoint that already failed (or could not start) is not tried again.
      secondsLeft: failed ? 0 : secondsLeft,
      storageAvailable: !failed && job.fallback === 'checkpoint-to-storage',
      now,
    });
    const why = failed ? `${failed}; ${decision.reason}` : decision.reason;
    addEvent(rec, now, `${job.workloadId} (guarded): ${why}`);
    if (decision.use !== 'guard-checkpoint') return false;
    Object.assign(job, {
      state: 'checkpointed',
      checkpointId: decision.checkpointId,
      guardRpoSeconds: Math.round(decision.rpoSeconds * 10) / 10,
      endedAt: now.toISOString(),
      beforeDeadline: true,
      missReason: why,
    });
    delete job.error;
    return true;
  }

  /** Copies the ends of checkpoints in flight into their jobs; true when one ended. */
  private async collectCheckpoints(rec: EvacuationRecord): Promise<boolean> {
    let any = false;
    for (const job of rec.jobs.filter((j) => j.state === 'checkpointing' && j.checkpointId && !isGuardRestore(j))) {
      const cp = await this.checkpoints.get(job.checkpointId!);
      if (!cp || cp.state === 'queued' || cp.state === 'taking') continue;
      any = true;
      const endedAt = cp.storedAt ?? cp.updatedAt;
      if (cp.state === 'failed') {
        Object.assign(job, { state: 'missed', endedAt, error: `checkpoint failed: ${cp.error ?? ''}` });
        await this.guardStandsIn(rec, job, `the final checkpoint ${cp.id} failed (${cp.error ?? ''})`);
      } else
        Object.assign(job, {
          state: 'checkpointed',
          endedAt,
          beforeDeadline: Date.parse(endedAt) <= Date.parse(rec.deadline),
        });
      addEvent(rec, this.clock.now(), `${job.workloadId}: checkpoint ${cp.id} ${cp.state}`);
    }
    return any;
  }

  private giveUpPending(rec: EvacuationRecord, reason: string): void {
    for (const job of rec.jobs.filter((j) => j.state === 'pending'))
      Object.assign(job, { state: 'missed', missReason: reason });
  }

  /** Starts pending jobs in plan order while fewer than the plan's parallelism are in flight. */
  private async startNext(rec: EvacuationRecord): Promise<void> {
    const limit = Math.max(1, rec.plan?.parallelism ?? 1);
    const pending = rec.jobs.filter((j) => j.state === 'pending').sort((a, b) => (a.order ?? 1e9) - (b.order ?? 1e9));
    for (const job of pending) {
      if (rec.jobs.filter(jobInFlight).length >= limit) return;
      await this.start(rec, job);
    }
  }

  private async start(rec: EvacuationRecord, job: EvacuationJob): Promise<void> {
    // Planned while it ran here; a manual migration may have moved it since (the plan can wait out trials first).
    const now = await this.workloads.get(job.workloadId).catch(() => undefined);
    if (now && now.nodeId !== rec.nodeId) {
      const message = `already left ${rec.nodeId}: it runs on '${now.nodeId}' now (moved by another migration)`;
      Object.assign(job, { state: 'skipped', error: message, endedAt: this.clock.now().toISOString() });
      addEvent(rec, this.clock.now(), `not starting ${job.workloadId}: ${message}`);
      return;
    }
    for (let changes = 0; ; changes++) {
      // The plan's strategy (a re-plan below may change it with the destination) and the notice's deadline (which
      // bounds pre-copy rounds); pages leaving a node that is going are encrypted (the API's default transport).
      const strategy = strategyFor(rec, job);
      try {
        const m = await this.migrationsService.start({
          workloadId: job.workloadId,
          ...(job.destinationNodeId ? { destinationNodeId: job.destinationNodeId } : {}),
          strategy: strategy && STRATEGIES.has(strategy) ? (strategy as Strategy) : 'stop-and-copy',
          transport: 'tls',
          keepImages: false,
          deadline: new Date(rec.deadline),
          evacuationId: rec.id,
        });
        Object.assign(job, { migrationId: m.id, state: m.state, startedAt: m.createdAt, strategy: m.strategy });
        return;
      } catch (error) {
        const message = error instanceof DomainError || error instanceof Error ? error.message : String(error);
        const at = this.clock.now();
        // The plan's destination left placement since the plan (its own notice in the same reclaim, a drain):
        // re-planned away from it, the job stays pending, and the next choice is tried at once (a few in a row).
        // Skipped, the workload would never be tried again.
        if (error instanceof DestinationRefused && changes < MAX_DESTINATION_CHANGES) {
          addEvent(rec, at, `${job.workloadId}: ${message}; re-planning it elsewhere`);
          await this.replanAfter(rec, [{ workloadId: job.workloadId, outcome: 'failed' }], at.getTime());
          if (job.state !== 'pending') return;
          continue;
        }
        Object.assign(job, { state: 'skipped', error: message, endedAt: at.toISOString() });
        addEvent(rec, at, `could not start ${job.workloadId}: ${message}`);
        await this.replanAfter(rec, [{ workloadId: job.workloadId, outcome: 'failed' }], at.getTime());
        return;
      }
    }
  }

  /**
   * Writes this coordinator's fields (OWNED), the events it added since `read` and its re-plan marks onto the
   * record as stored now: a versioned update, retried from a fresh read when another writer came first.
   */
  private async save(rec: EvacuationRecord, read: ReadonlySet<object>): Promise<EvacuationRecord> {
    const added = rec.events.filter((e) => !read.has(e));
    const marks = new Map((rec.deadlineChanges ?? []).map((c) => [c.at + c.to, c.replannedAt]));
    const saved = await this.evacuations.update(rec.id, (stored) => {
      const target = stored as unknown as Record<string, unknown>;
      for (const key of OWNED) {
        if (rec[key] === undefined) delete target[key];
        else target[key] = rec[key];
      }
      appendEvents(stored, added);
      for (const c of stored.deadlineChanges ?? []) c.replannedAt ??= marks.get(c.at + c.to);
      stored.updatedAt = this.clock.now().toISOString();
    });
    return saved ?? rec;
  }
}
