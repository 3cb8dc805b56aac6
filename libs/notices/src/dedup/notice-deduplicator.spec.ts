import { crossSourceDedupKey, makeDedupKey, type Notice } from '../notice.js';
import { DedupStore } from './dedup-store.port.js';
import { InMemoryDedupStore } from './in-memory-dedup-store.js';
import { NoticeDeduplicator } from './notice-deduplicator.js';

let clock = 0;
const now = () => clock;
const notice = (o: Partial<Notice> = {}): Notice => ({
  nodeId: 'n1',
  source: 'aws',
  kind: 'preemption',
  deadline: new Date(clock + 120_000),
  deadlineEstimated: false,
  receivedAt: new Date(clock),
  dedupKey: makeDedupKey('n1', 'aws', 'preemption'),
  reason: 't',
  raw: {},
  ...o,
});

describe('NoticeDeduplicator', () => {
  beforeEach(() => (clock = 1_000_000));

  it('says new once, then not again while the key lives (flapping included)', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now });
    expect(await d.isNew(notice())).toBe(true);
    clock += 5_000; // gone, then back with a recomputed time
    expect(await d.isNew(notice({ deadline: new Date(clock + 120_000) }))).toBe(false);
  });

  it('remembers until deadline + grace, at least the minimum TTL, at most the maximum', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), {
      now,
      minTtlMs: 600_000,
      afterDeadlineMs: 300_000,
      maxTtlMs: 3_600_000,
    });
    // Announced 60 days ahead: held one hour, not 60 days.
    const far = notice({ deadline: new Date(clock + 60 * 86_400_000), dedupKey: 'far' });
    expect(d.ttlOf(far)).toBe(3_600_000);
    expect(await d.isNew(far)).toBe(true);
    clock += 3_599_999;
    expect(await d.isNew(far)).toBe(false);
    clock += 2;
    expect(await d.isNew(far)).toBe(true);

    // Deadline 30 min ahead: held until 5 min after it.
    const mid = notice({ deadline: new Date(clock + 1_800_000), dedupKey: 'mid' });
    expect(d.ttlOf(mid)).toBe(2_100_000);

    expect(await d.isNew(notice())).toBe(true); // 2 min ahead: the minimum, 10 min
    clock += 599_999;
    expect(await d.isNew(notice())).toBe(false);
    clock += 2;
    expect(await d.isNew(notice())).toBe(true);
  });

  it('a held key does not drop a notice with an earlier deadline: news once, then a duplicate again', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now, keyOf: crossSourceDedupKey });
    const far = notice({ source: 'webhook', deadline: new Date(clock + 60 * 86_400_000) });
    expect(await d.classify(far)).toBe('new');
    const real = notice({ deadline: new Date(clock + 120_000) });
    expect(await d.classify(real)).toBe('earlier');
    expect(await d.classify(real)).toBe('duplicate');
    // Within the tolerance (sources recompute their deadline on every poll), or later: the same deadline.
    expect(await d.classify(notice({ deadline: new Date(clock + 116_000) }))).toBe('duplicate');
    expect(await d.classify(far)).toBe('duplicate');
    expect(await d.classify(notice({ deadline: new Date(clock + 60_000) }))).toBe('earlier');
  });

  it('tells exactly one of several replicas about an earlier deadline', async () => {
    const store = new InMemoryDedupStore(now);
    const replicas = [1, 2, 3].map(() => new NoticeDeduplicator(store, { now }));
    await replicas[0]!.isNew(notice({ deadline: new Date(clock + 3_600_000) }));
    const sooner = notice({ deadline: new Date(clock + 120_000) });
    const answers = await Promise.all(replicas.map((r) => r.classify(sooner)));
    expect(answers.sort()).toEqual(['duplicate', 'duplicate', 'earlier']);
  });

  it('shares one store between instances (replicas)', async () => {
    const store = new InMemoryDedupStore(now);
    const a = new NoticeDeduplicator(store, { now });
    const b = new NoticeDeduplicator(store, { now });
    expect([await a.isNew(notice()), await b.isNew(notice())]).toEqual([true, false]);
  });

  it('can deduplicate across sources', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now, keyOf: crossSourceDedupKey });
    expect(await d.isNew(notice())).toBe(true);
    expect(await d.isNew(notice({ source: 'k8s', dedupKey: makeDedupKey('n1', 'k8s', 'preemption') }))).toBe(false);
    expect(await d.isNew(notice({ kind: 'rebalance' }))).toBe(true);
  });

  it('filters a batch, counting duplicates inside it once', async () => {
    const d = new NoticeDeduplicator(new InMemoryDedupStore(now), { now });
    expect(await d.filterNew([notice(), notice(), notice({ dedupKey: 'other' })])).toHaveLength(2);
  });

  it('fails open and reports when the store fails', async () => {
    class Broken extends DedupStore {
      setIfAbsent(): Promise<boolean> {
        return Promise.reject(new Error('redis down'));
      }
    }
    const errors: unknown[] = [];
    const d = new NoticeDeduplicator(new Broken(), { onStoreError: (e) => errors.push(e) });
    expect(await d.isNew(notice())).toBe(true);
    expect(errors).toHaveLength(1);
  });
});

describe('makeDedupKey', () => {
  it('cannot be confused by separators inside a node id', () => {
    expect(makeDedupKey('a:aws', 'gcp', 'preemption')).not.toBe(makeDedupKey('a', 'aws', 'preemption'));
    expect(makeDedupKey('a', 'azure', 'preemption', 'E1')).toBe('a:azure:preemption:E1');
  });
});
