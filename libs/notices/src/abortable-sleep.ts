import type { NoticeBatch } from './notice-problem.js';
import type { NoticeSink } from './notice-provider.port.js';

/**
 * Resolves after `ms`, or early (without throwing) when the signal aborts: loops check `signal.aborted`
 * right after, so an abort ends them at once instead of at the next tick.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return cuttableSleep(ms, signal).done;
}

/**
 * {@link abortableSleep} that its caller can also end early (`cut`), without a signal of its own: a poll loop
 * sleeps thousands of times a second at 1,000 nodes, and an AbortController plus `AbortSignal.any` per sleep
 * was ~5 % of a core there (the fleet bench's CPU profile).
 */
export function cuttableSleep(ms: number, signal?: AbortSignal): { done: Promise<void>; cut: () => void } {
  let cut = () => {};
  const done =
    signal?.aborted || ms <= 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const end = () => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', end);
            resolve();
          };
          const timer = setTimeout(end, ms);
          signal?.addEventListener('abort', end, { once: true });
          cut = end;
        });
  return { done, cut: () => cut() };
}

/** Tells of news (a MetadataClient serving a watch of its own): the poll loop then polls at once. */
export interface WakeSource {
  /** Subscribes; returns the unsubscribe. */
  onChange(listener: () => void): () => void;
}

/**
 * Runs `poll` every `intervalMs` (start to start) until the signal aborts, handing results to `deliver`. A
 * `wake` (news heard while polling or sleeping) starts the next poll at once: a client serving answers from a
 * watch of its own (StreamingMetadataClient) would otherwise add up to a period to every notice it saw.
 */
export async function runPollLoop<T>(
  poll: (signal: AbortSignal) => Promise<T>,
  deliver: (result: T) => Promise<void>,
  intervalMs: number,
  signal: AbortSignal,
  wake?: WakeSource,
): Promise<void> {
  let woken = false;
  let cutSleep: (() => void) | undefined;
  const unsubscribe = wake?.onChange(() => {
    woken = true;
    cutSleep?.();
  });
  try {
    while (!signal.aborted) {
      const started = Date.now();
      woken = false;
      let result: T;
      try {
        result = await poll(signal);
      } catch (err) {
        // poll() reports source errors as problems; anything thrown here is an abort or a bug in a sink.
        if (signal.aborted) return;
        throw err;
      }
      if (signal.aborted) return;
      await deliver(result);
      if (woken) continue;
      const sleep = cuttableSleep(intervalMs - (Date.now() - started), signal);
      cutSleep = sleep.cut;
      await sleep.done;
      cutSleep = undefined;
    }
  } finally {
    unsubscribe?.();
  }
}

/** The watch loop of a polling provider: each poll's problems, then its notices, go to the sink. */
export function watchByPolling(
  poll: (signal: AbortSignal) => Promise<NoticeBatch>,
  sink: NoticeSink,
  intervalMs: number,
  signal: AbortSignal,
  wake?: WakeSource,
): Promise<void> {
  return runPollLoop(
    poll,
    async (result) => {
      result.problems.forEach((p) => sink.problem(p));
      sink.polled?.(result.problems.length);
      for (const n of result.notices) await sink.notice(n);
    },
    intervalMs,
    signal,
    wake,
  );
}
