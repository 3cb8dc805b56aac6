import type { NoticeDeduplicator } from './dedup/notice-deduplicator.js';
import type { Notice } from './notice.js';
import type { NoticeProblem } from './notice-problem.js';
import type { NoticeProvider } from './notice-provider.port.js';

/** Options of {@link watchNotices}. */
export interface WatchNoticesOptions {
  dedup: NoticeDeduplicator;
  /** Called once per new notice (across every replica sharing the dedup store). */
  onNotice: (notice: Notice) => void | Promise<void>;
  /** Called for problems, throttled per (node, source, code, path). */
  onProblem?: (problem: NoticeProblem, repeats: number) => void;
  /** Report the same kind of problem again at most this often, with the count of suppressed ones. */
  problemRepeatMs?: number;
  signal: AbortSignal;
  now?: () => number;
}

/**
 * Runs a provider until the signal aborts: deduplicates its notices and throttles its problems, so a
 * 1 s poll against a broken endpoint logs once a minute rather than every second.
 */
export async function watchNotices(provider: NoticeProvider, options: WatchNoticesOptions): Promise<void> {
  const now = options.now ?? Date.now;
  const repeatMs = options.problemRepeatMs ?? 60_000;
  const seen = new Map<string, { at: number; suppressed: number }>();
  await provider.watch(
    {
      notice: async (n) => {
        if (await options.dedup.isNew(n)) await options.onNotice(n);
      },
      problem: (p) => {
        if (!options.onProblem) return;
        const key = [p.nodeId, p.source, p.code, p.path].join('\u0000');
        const last = seen.get(key);
        const t = now();
        if (last && t - last.at < repeatMs) {
          last.suppressed++;
          return;
        }
        seen.set(key, { at: t, suppressed: 0 });
        options.onProblem(p, last?.suppressed ?? 0);
      },
    },
    options.signal,
  );
}
