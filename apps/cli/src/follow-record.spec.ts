/**
 * followRecord: `migrate --wait` and `evacuate --wait` read the record again when the event stream says it
 * changed, not on a timer; a quiet stream still gets a read every `safetyMs`; a refused or ended stream turns
 * into polling. Driven with a fake feed and a fake API (no timers asserted: the safety net is set far away
 * where the test relies on events alone).
 */
import type { ApiClient } from './api-client.js';
import { followRecord, type EventFeed } from './progress.js';

type Rec = { id: string; state: string; n: number };

/** An API whose record advances one step per read; `states` lists what each read answers. */
function fakeApi(states: string[]) {
  const reads: string[] = [];
  const api = {
    request: (_method: string, path: string) => {
      reads.push(path);
      const n = reads.length - 1;
      return Promise.resolve({ id: 'm1', state: states[Math.min(n, states.length - 1)], n });
    },
  } as unknown as ApiClient;
  return { api, reads };
}

/** A feed the test pushes events into; records the filters asked for and whether it was stopped. */
function fakeFeed() {
  const waiting: ((v: IteratorResult<unknown>) => void)[] = [];
  const queued: IteratorResult<unknown>[] = [];
  const seen = { filters: [] as Record<string, string>[], aborted: false };
  const feed: EventFeed = (filter, signal) => {
    seen.filters.push(filter);
    signal.addEventListener('abort', () => (seen.aborted = true));
    return {
      [Symbol.asyncIterator]: () => ({
        next: () =>
          new Promise<IteratorResult<unknown>>((resolve) => {
            const q = queued.shift();
            if (q) resolve(q);
            else waiting.push(resolve);
          }),
      }),
    };
  };
  const push = (r: IteratorResult<unknown>) => {
    const w = waiting.shift();
    if (w) w(r);
    else queued.push(r);
  };
  return {
    feed,
    seen,
    event: () => push({ done: false, value: { type: 'phase' } }),
    end: () => push({ done: true, value: undefined }),
  };
}

const done = (r: Rec) => r.state === 'completed';
const far = { safetyMs: 60_000, pollMs: 60_000 };

describe('followRecord', () => {
  it('reads the record once at the start and once per event, until it is done; then stops the stream', async () => {
    const { api, reads } = fakeApi(['running', 'running', 'completed']);
    const f = fakeFeed();
    const follow = followRecord<Rec>(api, (id) => `/migrations/${id}`, done, f.feed, 'migration', far);
    const got: Rec[] = [];
    const run = (async () => {
      for await (const r of follow('m1')) got.push(r);
    })();
    f.event();
    f.event();
    await run;
    expect(got.map((r) => r.state)).toEqual(['running', 'running', 'completed']);
    expect(reads).toEqual(['/migrations/m1', '/migrations/m1', '/migrations/m1']);
    expect(f.seen.filters).toEqual([{ migration: 'm1' }]);
    expect(f.seen.aborted).toBe(true);
  });

  it('without events it waits (no polling while the stream is open) ...', async () => {
    const { api, reads } = fakeApi(['running', 'completed']);
    const f = fakeFeed();
    const it = followRecord<Rec>(
      api,
      (id) => `/evacuations/${id}`,
      done,
      f.feed,
      'evacuation',
      far,
    )('e1')[Symbol.asyncIterator]();
    expect((await it.next()).value).toMatchObject({ state: 'running' });
    const second = it.next();
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toHaveLength(1);
    f.event();
    expect((await second).value).toMatchObject({ state: 'completed' });
    expect(f.seen.filters).toEqual([{ evacuation: 'e1' }]);
  });

  it('... but reads again after safetyMs when the stream stays quiet (an event missed)', async () => {
    const { api } = fakeApi(['running', 'completed']);
    const f = fakeFeed();
    const got: string[] = [];
    for await (const r of followRecord<Rec>(api, (id) => `/m/${id}`, done, f.feed, 'migration', { safetyMs: 20 })('m1'))
      got.push(r.state);
    expect(got).toEqual(['running', 'completed']);
  });

  const ended: EventFeed = () => ({
    [Symbol.asyncIterator]: () => ({ next: () => Promise.resolve({ done: true, value: undefined }) }),
  });
  const refused: EventFeed = () => ({
    [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(new Error('404 Not Found')) }),
  });
  it.each([
    ['ends', ended],
    ['is refused (an orchestrator without GET /events)', refused],
  ])('polls every pollMs when the stream %s', async (_label, feed) => {
    const { api } = fakeApi(['running', 'running', 'running', 'completed']);
    const got: string[] = [];
    const follow = followRecord<Rec>(api, (id) => `/m/${id}`, done, feed, 'migration', { safetyMs: 60_000, pollMs: 5 });
    for await (const r of follow('m1')) got.push(r.state);
    expect(got).toEqual(['running', 'running', 'running', 'completed']);
  });
});
