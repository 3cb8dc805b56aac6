import { FakeImdsServer, imdsEventDate, RecordingNoticeSink } from '../../../testing/src/fakes/index.js';
import { InMemoryDedupStore } from '../dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from '../dedup/notice-deduplicator.js';
import { HttpMetadataClient } from '../http-metadata-client.adapter.js';
import type { Notice } from '../notice.js';
import { watchNotices } from '../watch-notices.js';
import { AwsImdsNoticeProvider, type AwsImdsNoticeProviderOptions } from './aws-imds-provider.js';

const ACTION = '/latest/meta-data/spot/instance-action';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('AwsImdsNoticeProvider against FakeImdsServer (real HTTP on loopback)', () => {
  let imds: FakeImdsServer;
  const stops: AbortController[] = [];

  beforeEach(async () => {
    imds = await new FakeImdsServer().start();
  });
  afterEach(async () => {
    stops.splice(0).forEach((c) => c.abort());
    await imds.stop();
  });

  const provider = (opts: Partial<AwsImdsNoticeProviderOptions> = {}) =>
    new AwsImdsNoticeProvider({ nodeId: 'node-a', client: new HttpMetadataClient({ baseUrl: imds.url }), ...opts });
  const run = (p: AwsImdsNoticeProvider, sink: RecordingNoticeSink) => {
    const c = new AbortController();
    stops.push(c);
    void p.watch(sink, c.signal);
  };

  it('sees nothing while IMDS answers 404, with a token on every GET', async () => {
    const result = await provider().poll();
    expect(result).toEqual({ notices: [], problems: [] });
    const gets = imds.requests.filter((r) => r.method === 'GET');
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((r) => typeof r.headers['x-aws-ec2-metadata-token'] === 'string')).toBe(true);
    const put = imds.requests.find((r) => r.method === 'PUT');
    expect(put?.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('3600');
  });

  it('detects a Spot interruption within 1 s and reads the deadline from `time`', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await sleep(700);
    const deadline = new Date(Math.floor(Date.now() / 1000) * 1000 + 90_000);
    const t0 = Date.now();
    imds.setSpotInterruption({ action: 'stop', time: deadline });
    const { notice, at } = await sink.waitForNotice(undefined, 1_000);
    expect(at - t0).toBeLessThan(1_000);
    expect(notice).toMatchObject({
      nodeId: 'node-a',
      source: 'aws',
      kind: 'preemption',
      action: 'stop',
      deadlineEstimated: false,
    });
    expect(notice.deadline.getTime()).toBe(deadline.getTime());
  });

  it('measures detection latency over 10 changes (p50/max printed)', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      imds.clearSpotInterruption();
      await sleep(600 + Math.random() * 500);
      const t0 = Date.now();
      imds.setSpotInterruption();
      const { at } = await sink.waitForNotice((_, when) => when >= t0, 1_000);
      latencies.push(at - t0);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `AWS IMDS detection latency (poll 500 ms): p50=${latencies[4]} ms max=${latencies[9]} ms all=${latencies.join(',')}`,
    );
    expect(latencies[9]).toBeLessThan(1_000);
  }, 20_000);

  it('raises one notice across repeated polls although AEMM-style `time` changes on every request', async () => {
    const raised: Notice[] = [];
    const dedup = new NoticeDeduplicator(new InMemoryDedupStore());
    const c = new AbortController();
    stops.push(c);
    void watchNotices(provider({ pollIntervalMs: 100 }), {
      dedup,
      onNotice: (n) => void raised.push(n),
      signal: c.signal,
    });
    imds.setSpotInterruption();
    await sleep(1_300);
    expect(imds.requestCount(ACTION)).toBeGreaterThanOrEqual(8);
    expect(raised).toHaveLength(1);
  });

  it('raises one notice from two provider instances sharing one deduplicator, and none again when it flaps', async () => {
    const raised: Notice[] = [];
    const dedup = new NoticeDeduplicator(new InMemoryDedupStore());
    for (let i = 0; i < 2; i++) {
      const c = new AbortController();
      stops.push(c);
      void watchNotices(provider({ pollIntervalMs: 100 }), {
        dedup,
        onNotice: (n) => void raised.push(n),
        signal: c.signal,
      });
    }
    imds.setSpotInterruption();
    await sleep(500);
    imds.clearSpotInterruption();
    await sleep(400);
    imds.setSpotInterruption();
    await sleep(500);
    expect(raised).toHaveLength(1);
  });

  it('reuses the token, and fetches a new one after a 401 without losing the poll', async () => {
    const p = provider();
    await p.poll();
    await p.poll();
    expect(imds.tokensIssued).toBe(1);
    imds.expireTokens();
    imds.setSpotInterruption();
    const result = await p.poll();
    expect(imds.tokensIssued).toBe(2);
    expect(result.problems).toEqual([]);
    expect(result.notices.map((n) => n.kind)).toEqual(['preemption']);
  });

  it('refreshes a short-lived token before IMDS expires it', async () => {
    const p = provider({ token: { ttlSeconds: 1 } });
    for (let i = 0; i < 5; i++) {
      expect((await p.poll()).problems).toEqual([]);
      await sleep(300);
    }
    expect(imds.tokensIssued).toBeGreaterThanOrEqual(2);
    // Refreshed ahead of expiry: IMDS never had to refuse a GET.
    expect(imds.requests.filter((r) => r.status === 401)).toEqual([]);
  });

  it('reads the rebalance recommendation with an estimated deadline', async () => {
    imds.setRebalanceRecommendation(new Date('2020-10-27T08:22:00Z'));
    const t = Date.now();
    const { notices, problems } = await provider({ rebalanceLeadMs: 60_000 }).poll();
    expect(problems).toEqual([]);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ kind: 'rebalance', deadlineEstimated: true });
    expect(Math.abs(notices[0]!.deadline.getTime() - (t + 60_000))).toBeLessThan(500);
  });

  it('reads scheduled maintenance events, skipping completed ones', async () => {
    const notBefore = new Date(Math.floor(Date.now() / 1000) * 1000 + 3 * 86_400_000);
    imds.setScheduledEvents([
      {
        Code: 'instance-retirement',
        Description: 'retire',
        EventId: 'instance-event-1',
        NotBefore: imdsEventDate(notBefore),
        NotAfter: imdsEventDate(new Date(notBefore.getTime() + 3_600_000)),
        State: 'active',
      },
      {
        Code: 'system-reboot',
        Description: 'done',
        EventId: 'instance-event-0',
        NotBefore: imdsEventDate(new Date(Date.now() - 86_400_000)),
        State: 'completed',
      },
    ]);
    const { notices, problems } = await provider().poll();
    expect(problems).toEqual([]);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ kind: 'termination', action: 'instance-retirement' });
    expect(notices[0]!.deadline.getTime()).toBe(notBefore.getTime());
    expect(notices[0]!.dedupKey).toContain('instance-event-1');
  });

  describe('a malformed instance-action body does not hide a notice spot/termination-time still gives', () => {
    it.each([
      ['JSON cut short', '{"action": "terminate", "time": ', 'malformed_json'],
      ['a field missing', '{"action":"terminate"}', 'invalid_payload'],
    ])('%s: the notice comes from spot/termination-time and says so', async (_name, body, code) => {
      const deadline = new Date(Math.floor(Date.now() / 1000) * 1000 + 90_000);
      imds.setSpotInterruption({ action: 'terminate', time: deadline });
      imds.injectFault({ path: ACTION, status: 200, body });
      const { notices, problems } = await provider().poll();
      expect(notices).toHaveLength(1);
      expect(notices[0]).toMatchObject({
        source: 'aws',
        kind: 'preemption',
        action: 'terminate',
        deadlineEstimated: false,
        dedupKey: 'node-a:aws:preemption',
        raw: { path: '/latest/meta-data/spot/termination-time' },
      });
      expect(notices[0]!.reason).toMatch(
        /read from spot\/termination-time because spot\/instance-action was malformed/,
      );
      expect(notices[0]!.deadline.getTime()).toBe(deadline.getTime());
      // The broken body is still reported: someone should look at it.
      expect(problems.map((p) => p.code)).toEqual([code]);
      expect(imds.requestCount('/latest/meta-data/spot/termination-time', 'GET')).toBe(1);
    });

    it('a well-formed instance-action is read alone (termination-time is not asked)', async () => {
      imds.setSpotInterruption({ action: 'terminate' });
      const { notices } = await provider().poll();
      expect(notices[0]!.reason).not.toMatch(/termination-time/);
      expect(imds.requestCount('/latest/meta-data/spot/termination-time', 'GET')).toBe(0);
    });

    it('a malformed body and no termination-time (a stop action) raises nothing, only the problem', async () => {
      imds.setSpotInterruption({ action: 'stop' });
      imds.injectFault({ path: ACTION, status: 200, body: '<html>captive portal</html>' });
      const { notices, problems } = await provider().poll();
      expect(notices).toEqual([]);
      expect(problems.map((p) => p.code)).toEqual(['malformed_json']);
    });

    it('a stale termination-time after a malformed body is not a new notice', async () => {
      imds.setSpotInterruption({ action: 'terminate', time: '2017-09-18T08:22:00Z' });
      imds.injectFault({ path: ACTION, status: 200, body: '{' });
      const { notices, problems } = await provider().poll();
      expect(notices).toEqual([]);
      expect(problems.map((p) => p.code).sort()).toEqual(['malformed_json', 'stale']);
    });
  });

  describe('bad input raises nothing and reports a readable problem', () => {
    const cases: [string, (s: FakeImdsServer) => void, string, RegExp][] = [
      [
        'malformed JSON',
        (s) => s.injectFault({ path: ACTION, status: 200, body: '{"action": "terminate", "time": ' }),
        'malformed_json',
        /not JSON/,
      ],
      [
        'an HTML page with status 200 (wrong content)',
        (s) => s.injectFault({ path: ACTION, status: 200, body: '<html><body>captive portal</body></html>' }),
        'malformed_json',
        /not JSON/,
      ],
      ['a time in the past', (s) => s.setSpotInterruption({ time: '2017-09-18T08:22:00Z' }), 'stale', /in the past/],
      [
        'an unknown action',
        (s) => s.setSpotInterruption({ action: 'reboot' }),
        'unknown_action',
        /'reboot' is not one of terminate\|stop\|hibernate/,
      ],
      [
        'a time that is not RFC 3339',
        (s) => s.setSpotInterruption({ time: '18/09/2017 08:22' }),
        'invalid_payload',
        /RFC 3339/,
      ],
      [
        'a missing field',
        (s) => s.injectFault({ path: ACTION, status: 200, body: '{"action":"terminate"}' }),
        'invalid_payload',
        /time/,
      ],
      [
        '401 on every GET (token refused)',
        (s) => s.injectFault({ path: ACTION, status: 401, body: 'Unauthorized' }),
        'unauthorized',
        /401/,
      ],
      [
        '503 from IMDS',
        (s) => s.injectFault({ path: ACTION, status: 503, body: 'Service Unavailable' }),
        'unavailable',
        /503/,
      ],
      [
        'token PUT refused with 403 (IMDS disabled)',
        (s) => s.injectFault({ path: '/latest/api/token', status: 403 }),
        'unauthorized',
        /IMDS disabled/,
      ],
      [
        'token PUT answered 503',
        (s) => s.injectFault({ path: '/latest/api/token', status: 503 }),
        'unavailable',
        /token/,
      ],
      ['IMDS too slow to answer', (s) => s.injectFault({ path: ACTION, delayMs: 800 }), 'transport', /timed out/],
    ];
    it.each(cases)('%s', async (_name, arrange, code, message) => {
      arrange(imds);
      const { notices, problems } = await provider({ requestTimeoutMs: 300 }).poll();
      expect(notices).toEqual([]);
      const p = problems.find((x) => x.code === code);
      expect(p).toBeDefined();
      expect(p!.message).toMatch(message);
      expect(p!.nodeId).toBe('node-a');
    });
  });
});
