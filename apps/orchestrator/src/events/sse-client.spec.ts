import type { DeliveredEvent } from '@spotlift/domain';
import { compareIds } from './event-hub.js';
import { frame, SseClient, type SseSink } from './sse-client.js';

/** A response whose reader reads nothing: every byte written stays buffered. */
function sink() {
  const chunks: string[] = [];
  let destroyed = false;
  const s: SseSink & { chunks: string[]; destroyed: () => boolean } = {
    chunks,
    destroyed: () => destroyed,
    write: (c: string) => (chunks.push(c), true),
    get writableLength() {
      return chunks.join('').length;
    },
    destroy: () => void (destroyed = true),
  };
  return s;
}

const ev = (id: string, over: Partial<DeliveredEvent> = {}): DeliveredEvent =>
  ({
    id,
    type: 'migration.phase',
    phase: 'dump',
    status: 'started',
    at: 'T',
    nodes: ['node-a', 'node-b'],
    workload: 'wl-1',
    migration: 'mig-1',
    ...over,
  }) as DeliveredEvent;

const ids = (s: { chunks: string[] }) => s.chunks.flatMap((c) => /^id: (\S+)/.exec(c)?.[1] ?? []);

describe('SseClient', () => {
  it('frames an event with its stream id and type, one JSON data line', () => {
    expect(frame(ev('5-1'))).toBe(`id: 5-1\nevent: migration.phase\ndata: ${JSON.stringify(ev('5-1'))}\n\n`);
  });

  it('replay, then what arrived live during it, without duplicates and in stream order', () => {
    const s = sink();
    const c = new SseClient(s, {}, 1 << 20, compareIds);
    c.resumeAfter('1-0');
    c.live(ev('3-0'));
    c.live(ev('4-0'));
    c.replayed(ev('1-0')); // at or before Last-Event-ID: not again
    c.replayed(ev('2-0'));
    c.replayed(ev('3-0'));
    expect(ids(s)).toEqual(['2-0', '3-0']);
    c.replayDone();
    c.live(ev('5-0'));
    expect(ids(s)).toEqual(['2-0', '3-0', '4-0', '5-0']);
  });

  it('filters by node (any of the event nodes), workload, migration, evacuation; all given must match', () => {
    const s = sink();
    const c = new SseClient(s, { node: 'node-b', migration: 'mig-1' }, 1 << 20, compareIds);
    c.replayDone();
    c.live(ev('1-0'));
    c.live(ev('2-0', { nodes: ['node-c'] }));
    c.live(ev('3-0', { migration: 'mig-2' }));
    c.live(ev('4-0', { nodes: ['node-b'], migration: undefined }));
    expect(ids(s)).toEqual(['1-0']);
    const e = sink();
    const byEvac = new SseClient(e, { evacuation: 'ev-1', workload: 'wl-1' }, 1 << 20, compareIds);
    byEvac.replayDone();
    byEvac.live(ev('1-0', { evacuation: 'ev-1' }));
    byEvac.live(ev('2-0'));
    expect(ids(e)).toEqual(['1-0']);
  });

  it('a client that reads nothing is dropped once its unread bytes pass the bound, and gets nothing more', () => {
    const s = sink();
    const reasons: string[] = [];
    const c = new SseClient(s, {}, 4_096, compareIds, (r) => reasons.push(r));
    c.replayDone();
    let n = 0;
    while (!s.destroyed() && n < 1000) c.live(ev(`${++n}-0`, { detail: 'x'.repeat(500) }));
    expect(s.destroyed()).toBe(true);
    expect(n).toBeLessThan(20);
    expect(reasons).toEqual(['more than 4096 bytes unread']);
    const written = s.chunks.length;
    c.live(ev('999-0'));
    c.comment('heartbeat');
    expect(s.chunks).toHaveLength(written);
  });

  it('during its replay it is not dropped for a backlog (the replay waits for it), but live events held are bounded', () => {
    const s = sink();
    const c = new SseClient(s, {}, 4_096, compareIds);
    for (let i = 1; i <= 50; i++) c.replayed(ev(`${i}-0`));
    expect(s.destroyed()).toBe(false);
    expect(c.backedUp).toBe(true);
    for (let i = 100; i <= 10_100; i++) c.live(ev(`${i}-0`));
    expect(s.destroyed()).toBe(true);
    expect(c.dropped).toMatch(/held during its replay/);
  });
});
