import { InMemoryDedupStore } from './dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from './dedup/notice-deduplicator.js';
import { makeDedupKey, type Notice } from './notice.js';
import type { NoticeProblem } from './notice-problem.js';
import type { NoticeProvider, NoticeSink } from './notice-provider.port.js';
import { watchNotices } from './watch-notices.js';

const notice: Notice = {
  nodeId: 'n1',
  source: 'gcp',
  kind: 'preemption',
  deadline: new Date(Date.now() + 30_000),
  deadlineEstimated: true,
  receivedAt: new Date(),
  dedupKey: makeDedupKey('n1', 'gcp', 'preemption'),
  reason: 't',
  raw: 'TRUE',
};
const problem: NoticeProblem = {
  source: 'gcp',
  nodeId: 'n1',
  code: 'unavailable',
  message: 'x: 503',
  path: 'x',
  at: new Date(),
};

/** A provider that replays a script and returns. */
const scripted = (steps: ((s: NoticeSink) => void | Promise<void>)[]): NoticeProvider => ({
  source: 'gcp',
  async watch(sink) {
    for (const step of steps) await step(sink);
  },
});

describe('watchNotices', () => {
  it('passes each new notice once and throttles repeated problems', async () => {
    let clock = 0;
    const raised: Notice[] = [];
    const reported: [NoticeProblem, number][] = [];
    const steps = [
      (s: NoticeSink) => s.problem(problem),
      (s: NoticeSink) => s.problem(problem),
      (s: NoticeSink) => s.notice(notice),
      (s: NoticeSink) => s.notice(notice),
      (s: NoticeSink) => s.problem({ ...problem, code: 'malformed_json' }),
      () => void (clock += 61_000),
      (s: NoticeSink) => s.problem(problem),
    ];
    await watchNotices(scripted(steps), {
      dedup: new NoticeDeduplicator(new InMemoryDedupStore()),
      onNotice: (n) => void raised.push(n),
      onProblem: (p, repeats) => void reported.push([p, repeats]),
      signal: new AbortController().signal,
      now: () => clock,
    });
    expect(raised).toEqual([notice]);
    expect(reported.map(([p, r]) => [p.code, r])).toEqual([
      ['unavailable', 0],
      ['malformed_json', 0],
      ['unavailable', 1],
    ]);
  });
});
