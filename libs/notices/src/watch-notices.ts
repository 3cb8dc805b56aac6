import type { NoticeDeduplicator } from './dedup/notice-deduplicator.js';
import type { Notice, NoticeSource } from './notice.js';
import type { NoticeProblem } from './notice-problem.js';
import type { NoticeProvider } from './notice-provider.port.js';

/** A failure streak ended: the provider's first poll without a problem after polls with some. */
export interface NoticeRecovery {
  /** The node of the streak's first problem (none for a cluster-wide source). */
  nodeId?: string;
  source: NoticeSource;
  /** Polls that reported problems in the streak, and problems not reported (repeats of a reported code). */
  failedPolls: number;
  suppressed: number;
  /** From the streak's first problem to the clean poll. */
  lastedMs: number;
}

/** Options of {@link watchNotices}. */
export interface WatchNoticesOptions {
  dedup: NoticeDeduplicator;
  /** Called once per new notice (across every replica sharing the dedup store). */
  onNotice: (notice: Notice) => void | Promise<void>;
  /** Called for problems: the first of each code in a failure streak, then at most every `problemRepeatMs`. */
  onProblem?: (problem: NoticeProblem, repeats: number) => void;
  /** Called once when a streak that reported problems ends (polling providers only: see NoticeSink.polled). */
  onRecovered?: (recovery: NoticeRecovery) => void;
  /** Report the same kind of problem again, within one streak, at most this often (with the count suppressed). */
  problemRepeatMs?: number;
  signal: AbortSignal;
  now?: () => number;
}

export const DEFAULT_PROBLEM_REPEAT_MS = 600_000;

/**
 * Runs a provider until the signal aborts: deduplicates its notices and throttles its problems by failure
 * streak: a node whose polls fail logs the first problem of each code once, a reminder every
 * `problemRepeatMs` while it lasts, and one "recovered" line at the first clean poll. (Throttled per minute
 * instead, 1,000 unreachable nodes logged 3,000 lines a minute, and their recoveries went unsaid.)
 */
export async function watchNotices(provider: NoticeProvider, options: WatchNoticesOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const repeatMs = options.problemRepeatMs ?? DEFAULT_PROBLEM_REPEAT_MS;
  let streak:
    | {
        since: number;
        nodeId?: string;
        failedPolls: number;
        suppressed: number;
        seen: Map<string, { at: number; suppressed: number }>;
      }
    | undefined;
  await provider.watch(
    {
      notice: async (n) => {
        if (await options.dedup.isNew(n)) await options.onNotice(n);
      },
      problem: (p) => {
        const t = now();
        streak ??= {
          since: t,
          ...(p.nodeId ? { nodeId: p.nodeId } : {}),
          failedPolls: 0,
          suppressed: 0,
          seen: new Map(),
        };
        const key = [p.nodeId, p.code].join('\u0000');
        const last = streak.seen.get(key);
        if (last && t - last.at < repeatMs) {
          last.suppressed++;
          streak.suppressed++;
          return;
        }
        streak.seen.set(key, { at: t, suppressed: 0 });
        options.onProblem?.(p, last?.suppressed ?? 0);
      },
      polled: (problems) => {
        if (!streak) return;
        if (problems > 0) {
          streak.failedPolls++;
          return;
        }
        const { since, nodeId, failedPolls, suppressed } = streak;
        streak = undefined;
        options.onRecovered?.({
          ...(nodeId ? { nodeId } : {}),
          source: provider.source,
          failedPolls,
          suppressed,
          lastedMs: now() - since,
        });
      },
    },
    options.signal,
  );
}
