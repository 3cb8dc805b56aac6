/**
 * Rebalancing budgets: windows (cron + duration, UTC), moves per sliding hour, the interval between two moves
 * of one workload, moves at once. Pure: the clock and the history are arguments, so the planner and the
 * service's re-check at apply time judge the same way. Cron expressions are parsed by `cron-parser` (pure,
 * already in the tree through BullMQ's job schedulers) rather than by a parser of our own.
 */
import { CronExpressionParser } from 'cron-parser';
import { fmtSeconds } from './format.js';
import type { BudgetWindow, MoveStart, RebalanceBudgets } from './rebalance-types.js';

const HOUR_MS = 3_600_000;

/** Why a cron expression cannot be used, or undefined when it can (config validation says this to the operator). */
export function cronProblem(cron: string): string | undefined {
  try {
    CronExpressionParser.parse(cron, { tz: 'UTC', strict: false });
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

/** True while `now` is inside one of the window's occurrences (the latest cron time at or before now, plus its duration). */
export function inWindow(w: BudgetWindow, now: Date): boolean {
  // prev() is strictly before currentDate: a window that starts exactly now counts as open.
  const it = CronExpressionParser.parse(w.cron, { currentDate: new Date(now.getTime() + 1), tz: 'UTC' });
  const start = it.prev().getTime();
  return now.getTime() < start + w.durationSeconds * 1000;
}

/** Why no move may start now because of the windows, or undefined when they allow it. */
export function windowVerdict(windows: readonly BudgetWindow[], now: Date): string | undefined {
  const forbid = windows.find((w) => w.kind === 'forbid' && inWindow(w, now));
  if (forbid) return `inside the forbidden window '${forbid.cron}' (${fmtSeconds(forbid.durationSeconds)})`;
  const allows = windows.filter((w) => w.kind === 'allow');
  if (allows.length && !allows.some((w) => inWindow(w, now)))
    return `outside every allowed window (${allows.map((w) => `'${w.cron}'`).join(', ')})`;
  return undefined;
}

/** Why this workload may not move now because of its last move, or undefined. */
export function intervalVerdict(
  budgets: Pick<RebalanceBudgets, 'minMoveIntervalSeconds'>,
  history: readonly MoveStart[],
  workloadId: string,
  now: Date,
): string | undefined {
  const last = Math.max(-Infinity, ...history.filter((h) => h.workloadId === workloadId).map((h) => h.at));
  const ago = (now.getTime() - last) / 1000;
  if (ago < budgets.minMoveIntervalSeconds)
    return `moved ${fmtSeconds(Math.max(0, ago))} ago; at least ${fmtSeconds(budgets.minMoveIntervalSeconds)} between two moves`;
  return undefined;
}

/** Moves started in the hour before now. */
export function movesInLastHour(history: readonly MoveStart[], now: Date): number {
  const since = now.getTime() - HOUR_MS;
  return history.filter((h) => h.at > since && h.at <= now.getTime()).length;
}

/**
 * Why one more move may not start now (windows, moves per hour, moves at once), or undefined. `extra` counts
 * moves this plan already admitted ahead of it; `running` the rebalancing migrations in flight (0 when planning).
 */
export function startVerdict(
  budgets: RebalanceBudgets,
  history: readonly MoveStart[],
  now: Date,
  extra = 0,
  running = 0,
): string | undefined {
  const window = windowVerdict(budgets.windows, now);
  if (window) return window;
  const lastHour = movesInLastHour(history, now) + extra;
  if (lastHour >= budgets.maxMovesPerHour)
    return `${lastHour} move(s) in the last hour reach the budget of ${budgets.maxMovesPerHour} per hour`;
  if (running >= budgets.maxConcurrentMoves)
    return `${running} move(s) running reach the budget of ${budgets.maxConcurrentMoves} at once`;
  return undefined;
}
