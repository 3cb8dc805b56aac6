/**
 * Guard mode's decisions, pure: when a guarded workload's next `--leave-running` checkpoint is due, which
 * stored ones retention removes, and what is reported (RPO, freeze overhead). The scheduler that acts on
 * them lives in apps/orchestrator/src/guard.
 */
import type { CheckpointRecord } from './checkpoint.js';
import { guardChain, type GuardDumpPlan } from './guard-chain.js';
import type { GuardSettings } from './models.js';

export const GUARD_DEFAULT_KEEP = 2;

/** What the scheduler last decided for a workload, kept so readers see why nothing was taken. */
export interface GuardStatus {
  /** The workload's id. */
  id: string;
  /** When a take was last started or skipped: the next one is due an interval later. */
  lastDecisionAt?: string;
  /** The last skip and its reason (cleared by the next take). */
  skipped?: { at: string; reason: string };
  /** Its node is silent or said to be gone: what the node-loss pass decided last, and why (node-loss.ts). */
  loss?: { at: string; action: 'wait' | 'restore' | 'in-progress' | 'refused'; reason: string; checkpointId?: string };
}

export type GuardDecision =
  | { action: 'take' }
  | { action: 'wait'; reason: string }
  | { action: 'skip'; reason: string; predictedFreezeMs: number };

export interface GuardInput {
  settings: GuardSettings;
  /** The workload's guard checkpoints, any order. */
  checkpoints: CheckpointRecord[];
  status?: GuardStatus;
  /** The workload's resident memory now (scales the predicted freeze). */
  rssBytes?: number;
  /**
   * What the next guard dump would be (guard-chain.ts planGuardDump): its freeze is predicted from the last one
   * of that kind, since a full dump freezes for every page and an incremental one for the dirtied ones only.
   */
  nextDump?: GuardDumpPlan['kind'];
  /** Set when its node is under notice: an evacuation is in charge then. */
  nodeUnderNotice?: boolean;
  now: Date;
}

const newestFirst = (a: CheckpointRecord, b: CheckpointRecord) => b.createdAt.localeCompare(a.createdAt);
const freezeMs = (c: CheckpointRecord) =>
  c.criu.dump?.frozenTimeUs !== undefined ? c.criu.dump.frozenTimeUs / 1000 : undefined;

/** Stored guard checkpoints, newest first: the ones a restore could use. */
export function goodGuardCheckpoints(checkpoints: CheckpointRecord[]): CheckpointRecord[] {
  return checkpoints.filter((c) => c.mode === 'guard' && c.state === 'stored').sort(newestFirst);
}

/**
 * The last good one's freeze, scaled by how the resident memory changed since (a dump's frozen time is
 * mostly writing pages); undefined without a measured one. With `next`, only one of that kind counts: a full
 * one's freeze says nothing of an incremental one's (64 MiB in the qemu lab: 15 s against 1.9 s), and predicting
 * the one from the other would skip every incremental one after a full one above the budget, or let a full one
 * through on an incremental one's figure.
 */
export function predictFreezeMs(
  checkpoints: CheckpointRecord[],
  rssBytes?: number,
  next?: GuardDumpPlan['kind'],
): number | undefined {
  const kind = (c: CheckpointRecord) => (c.guardChain?.parentId !== undefined ? 'incremental' : 'full');
  const last = goodGuardCheckpoints(checkpoints).find(
    (c) => freezeMs(c) !== undefined && (next === undefined || kind(c) === next),
  );
  if (!last) return undefined;
  const measured = freezeMs(last)!;
  const scale = rssBytes && last.rssBytes ? rssBytes / last.rssBytes : 1;
  return Math.round(measured * scale);
}

export function decideGuard(input: GuardInput): GuardDecision {
  const { settings, now } = input;
  const mine = input.checkpoints.filter((c) => c.mode === 'guard');
  const running = mine.find((c) => c.state === 'queued' || c.state === 'taking');
  if (running) return { action: 'wait', reason: `guard checkpoint ${running.id} is ${running.state}` };
  if (input.nodeUnderNotice) return { action: 'wait', reason: 'its node is under notice: the evacuation is in charge' };
  const last = [input.status?.lastDecisionAt, ...mine.map((c) => c.createdAt)]
    .filter((t): t is string => t !== undefined)
    .map((t) => Date.parse(t))
    .reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
  const dueAt = last + settings.intervalSeconds * 1000;
  if (now.getTime() < dueAt) return { action: 'wait', reason: `next due at ${new Date(dueAt).toISOString()}` };
  const predicted = predictFreezeMs(mine, input.rssBytes, input.nextDump);
  if (settings.maxFreezeMs !== undefined && predicted !== undefined && predicted > settings.maxFreezeMs) {
    const from = input.nextDump ? `the last ${input.nextDump} guard checkpoint` : 'the last guard checkpoint';
    return {
      action: 'skip',
      predictedFreezeMs: predicted,
      reason: `predicted freeze ${predicted} ms (from ${from}) is above maxFreezeMs ${settings.maxFreezeMs}`,
    };
  }
  return { action: 'take' };
}

/**
 * The guard checkpoints retention removes: stored ones beyond the newest `keep`, and failed ones older than
 * the newest guard checkpoint (the newest failure stays, to say why), never a parent a kept one needs
 * (guard-chain.ts: chains are kept whole, so up to keep + chain length - 1 stay). Restored ones (clones) are the
 * operator's: never touched here.
 */
export function guardRetention(checkpoints: CheckpointRecord[], keep = GUARD_DEFAULT_KEEP): CheckpointRecord[] {
  const mine = checkpoints.filter((c) => c.mode === 'guard').sort(newestFirst);
  const good = goodGuardCheckpoints(mine);
  // A short notice's last checkpoint (a storage one, guard-restore.ts) built on the chain reads it too.
  const builtOn = checkpoints.filter((c) => c.mode !== 'guard' && c.guardChain?.parentId && c.state !== 'failed');
  // Whole chains stay: a kept, restored or in-flight checkpoint's parents are read by its restore (or its dump).
  const needed = new Set(
    [...good.slice(0, keep), ...mine.filter((c) => c.state !== 'stored' && c.state !== 'failed'), ...builtOn].flatMap(
      (c) => guardChain(c, [...mine, c]).ids,
    ),
  );
  const stale = good.slice(keep).filter((c) => !needed.has(c.id));
  const failed = mine.filter((c, i) => c.state === 'failed' && i > 0);
  return [...stale, ...failed];
}

export interface GuardReport {
  settings: Required<Pick<GuardSettings, 'intervalSeconds' | 'keep'>> & Pick<GuardSettings, 'maxFreezeMs'>;
  /** Age of the last good guard checkpoint (from its freeze), s; absent before the first. */
  rpoSeconds?: number;
  lastGoodCheckpointId?: string;
  /** Stored guard checkpoints, newest first, with the freeze each one cost. */
  checkpoints: { id: string; frozenAt?: string; freezeMs?: number; storedBytes?: number }[];
  /** Mean freeze per checkpoint and what that costs per hour at the interval. */
  overhead: { meanFreezeMs?: number; freezeMsPerHour?: number };
  skipped?: GuardStatus['skipped'];
  /** Why a restore after a node loss waits, or which one runs (absent while the node answers). */
  loss?: GuardStatus['loss'];
  lastFailure?: { id: string; error?: string; at: string };
}

export function guardReport(
  settings: GuardSettings,
  checkpoints: CheckpointRecord[],
  status: GuardStatus | undefined,
  now: Date,
): GuardReport {
  const good = goodGuardCheckpoints(checkpoints);
  const last = good[0];
  const since = last ? Date.parse(last.frozenAt ?? last.createdAt) : undefined;
  const freezes = good.map(freezeMs).filter((f): f is number => f !== undefined);
  const mean = freezes.length ? freezes.reduce((a, b) => a + b, 0) / freezes.length : undefined;
  const newestFailed = checkpoints.filter((c) => c.mode === 'guard').sort(newestFirst)[0];
  return {
    settings: {
      intervalSeconds: settings.intervalSeconds,
      keep: settings.keep ?? GUARD_DEFAULT_KEEP,
      ...(settings.maxFreezeMs !== undefined ? { maxFreezeMs: settings.maxFreezeMs } : {}),
    },
    ...(last && since !== undefined
      ? { rpoSeconds: Math.max(0, (now.getTime() - since) / 1000), lastGoodCheckpointId: last.id }
      : {}),
    checkpoints: good.map((c) => ({
      id: c.id,
      ...(c.frozenAt ? { frozenAt: c.frozenAt } : {}),
      ...(freezeMs(c) !== undefined ? { freezeMs: freezeMs(c) } : {}),
      ...(c.bytes.stored !== undefined ? { storedBytes: c.bytes.stored } : {}),
    })),
    overhead:
      mean !== undefined
        ? {
            meanFreezeMs: Math.round(mean * 10) / 10,
            freezeMsPerHour: Math.round((mean * 3600) / settings.intervalSeconds),
          }
        : {},
    ...(status?.skipped ? { skipped: status.skipped } : {}),
    ...(status?.loss ? { loss: status.loss } : {}),
    ...(newestFailed?.state === 'failed'
      ? {
          lastFailure: {
            id: newestFailed.id,
            at: newestFailed.updatedAt,
            ...(newestFailed.error ? { error: newestFailed.error } : {}),
          },
        }
      : {}),
  };
}
