import { InMemoryDedupStore } from './dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from './dedup/notice-deduplicator.js';
import { makeDedupKey, type Notice } from './notice.js';
import type { NoticeProblem } from './notice-problem.js';
import type { NoticeProvider, NoticeSink } from './notice-provider.port.js';
import { watchByPolling } from './abortable-sleep.js';
import type { NoticeBatch } from './notice-problem.js';
import { watchNotices, type NoticeRecovery } from './watch-notices.js';

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
      () => void (clock += 601_000),
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

  it('a node whose polls fail logs once per streak and code, then one recovered line; a new streak logs again', async () => {
    let clock = 0;
    const transport: NoticeProblem = {
      ...problem,
      source: 'aws',
      code: 'transport',
      message: 'ssh: handshake timed out',
    };
    // 40 failing polls (both paths each), one that also meets a 503, then clean ones, then failing again.
    const polls: NoticeBatch[] = [
      ...Array.from({ length: 40 }, () => ({ notices: [], problems: [transport, { ...transport, path: 'y' }] })),
      { notices: [], problems: [transport, { ...problem, source: 'aws' as const }] },
      { notices: [], problems: [] },
      { notices: [], problems: [] },
      { notices: [], problems: [transport] },
      { notices: [], problems: [] },
    ];
    const ctl = new AbortController();
    let i = 0;
    const provider: NoticeProvider = {
      source: 'aws',
      watch: (sink, signal) =>
        watchByPolling(
          () => {
            clock += 250;
            // Past the script: stop (the loop drops this last poll's batch).
            if (i === polls.length) ctl.abort();
            return Promise.resolve(polls[i++] ?? { notices: [], problems: [] });
          },
          sink,
          0,
          signal,
        ),
    };
    const lines: string[] = [];
    const recoveries: NoticeRecovery[] = [];
    await watchNotices(provider, {
      dedup: new NoticeDeduplicator(new InMemoryDedupStore()),
      onNotice: () => undefined,
      onProblem: (p, repeats) => void lines.push(`${p.code} ${repeats}`),
      onRecovered: (r) => void recoveries.push(r),
      signal: ctl.signal,
      now: () => clock,
    });
    expect(lines).toEqual(['transport 0', 'unavailable 0', 'transport 0']);
    expect(recoveries).toEqual([
      { nodeId: 'n1', source: 'aws', failedPolls: 41, suppressed: 80, lastedMs: 41 * 250 },
      { nodeId: 'n1', source: 'aws', failedPolls: 1, suppressed: 0, lastedMs: 250 },
    ]);
  });

  it('a streak longer than the repeat period is reminded of, with the count since', async () => {
    let clock = 0;
    const reported: [string, number][] = [];
    const steps = Array.from({ length: 30 }, () => (s: NoticeSink) => {
      clock += 60_000;
      s.problem(problem);
      s.polled?.(1);
    });
    await watchNotices(scripted(steps), {
      dedup: new NoticeDeduplicator(new InMemoryDedupStore()),
      onNotice: () => undefined,
      onProblem: (p, repeats) => void reported.push([p.code, repeats]),
      signal: new AbortController().signal,
      now: () => clock,
    });
    // At 1, 11 and 21 minutes: three lines for 30 failing minutes, the later ones counting the 9 in between.
    expect(reported).toEqual([
      ['unavailable', 0],
      ['unavailable', 9],
      ['unavailable', 9],
    ]);
  });
});
