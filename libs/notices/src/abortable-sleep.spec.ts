import { getEventListeners } from 'node:events';
import { cuttableSleep, runPollLoop, type WakeSource } from './abortable-sleep.js';

/** A wake source the test fires by hand; counts its subscribers. */
function handWake() {
  const listeners = new Set<() => void>();
  const source: WakeSource = {
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
  };
  return { source, fire: () => listeners.forEach((l) => l()), subscribers: () => listeners.size };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runPollLoop', () => {
  it('polls every interval, and at once when woken while it sleeps', async () => {
    const stop = new AbortController();
    const wake = handWake();
    const polls: number[] = [];
    const t0 = Date.now();
    const loop = runPollLoop(
      () => Promise.resolve(polls.push(Date.now() - t0)),
      () => Promise.resolve(),
      60_000,
      stop.signal,
      wake.source,
    );
    await sleep(50);
    expect(polls).toHaveLength(1);
    wake.fire();
    await sleep(50);
    expect(polls).toHaveLength(2);
    expect(polls[1]!).toBeLessThan(1_000);
    stop.abort();
    await loop;
    expect(wake.subscribers()).toBe(0);
  });

  it('news heard during a poll starts the next poll right after it (it may have read the old answer)', async () => {
    const stop = new AbortController();
    const wake = handWake();
    let polls = 0;
    const loop = runPollLoop(
      async () => {
        polls++;
        if (polls === 1) wake.fire();
        await sleep(10);
      },
      () => Promise.resolve(),
      60_000,
      stop.signal,
      wake.source,
    );
    await sleep(100);
    expect(polls).toBe(2);
    stop.abort();
    await loop;
  });

  it('without a wake source it waits out the interval', async () => {
    const stop = new AbortController();
    let polls = 0;
    const loop = runPollLoop(
      () => Promise.resolve(polls++),
      () => Promise.resolve(),
      60_000,
      stop.signal,
    );
    await sleep(100);
    expect(polls).toBe(1);
    stop.abort();
    await loop;
  });
});

describe('cuttableSleep', () => {
  const timed = async (p: Promise<void>) => {
    const t0 = Date.now();
    await p;
    return Date.now() - t0;
  };

  it('ends when cut, when its signal aborts, or after its time; a cut after the end is harmless', async () => {
    const cut = cuttableSleep(10_000);
    setTimeout(cut.cut, 20);
    expect(await timed(cut.done)).toBeLessThan(5_000);
    cut.cut();

    const stop = new AbortController();
    const aborted = cuttableSleep(10_000, stop.signal);
    setTimeout(() => stop.abort(), 20);
    expect(await timed(aborted.done)).toBeLessThan(5_000);

    expect(await timed(cuttableSleep(50).done)).toBeGreaterThanOrEqual(40);
  });

  it('resolves at once for no time or an aborted signal, and leaves no listener on the signal', async () => {
    const stop = new AbortController();
    const listeners = () => getEventListeners(stop.signal, 'abort');
    const s = cuttableSleep(10_000, stop.signal);
    expect(listeners()).toHaveLength(1);
    s.cut();
    await s.done;
    expect(listeners()).toHaveLength(0);
    expect(await timed(cuttableSleep(0).done)).toBeLessThan(1_000);
    stop.abort();
    expect(await timed(cuttableSleep(10_000, stop.signal).done)).toBeLessThan(1_000);
  });
});
