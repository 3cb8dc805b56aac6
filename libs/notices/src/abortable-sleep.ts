import type { NoticeBatch } from './notice-problem.js';
import type { NoticeSink } from './notice-provider.port.js';

/**
 * Resolves after `ms`, or early (without throwing) when the signal aborts: loops check `signal.aborted`
 * right after, so an abort ends them at once instead of at the next tick.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted || ms <= 0) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
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
      const cut = new AbortController();
      cutSleep = () => cut.abort();
      await abortableSleep(intervalMs - (Date.now() - started), AbortSignal.any([signal, cut.signal]));
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
