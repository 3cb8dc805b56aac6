import { FakeGcpMetadataServer, RecordingNoticeSink } from '../../../testing/src/fakes/index.js';
import { InMemoryDedupStore } from '../dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from '../dedup/notice-deduplicator.js';
import { HttpMetadataClient } from '../http-metadata-client.adapter.js';
import type { Notice } from '../notice.js';
import { watchNotices } from '../watch-notices.js';
import { GcpMetadataNoticeProvider, type GcpMetadataNoticeProviderOptions } from './gcp-metadata-provider.js';

const PREEMPTED = '/computeMetadata/v1/instance/preempted';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('GcpMetadataNoticeProvider against FakeGcpMetadataServer (hanging GETs on loopback)', () => {
  let gcp: FakeGcpMetadataServer;
  const stops: AbortController[] = [];

  beforeEach(async () => {
    gcp = await new FakeGcpMetadataServer().start();
  });
  afterEach(async () => {
    stops.splice(0).forEach((c) => c.abort());
    await gcp.stop();
  });

  const provider = (opts: Partial<GcpMetadataNoticeProviderOptions> = {}) =>
    new GcpMetadataNoticeProvider({
      nodeId: 'node-g',
      client: new HttpMetadataClient({ baseUrl: gcp.url }),
      retryDelayMs: 100,
      ...opts,
    });
  const run = (p: GcpMetadataNoticeProvider, sink: RecordingNoticeSink) => {
    const c = new AbortController();
    stops.push(c);
    void p.watch(sink, c.signal);
  };
  const hanging = async () => {
    for (let i = 0; i < 50 && gcp.waitingCount() === 0; i++) await sleep(20);
    expect(gcp.waitingCount()).toBe(1);
  };

  it('hangs with wait_for_change and the last etag, and sends Metadata-Flavor: Google', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await hanging();
    const reqs = gcp.requests.filter((r) => r.path === PREEMPTED);
    expect(reqs[0]!.query.get('wait_for_change')).toBeNull();
    expect(reqs[1]!.query.get('wait_for_change')).toBe('true');
    expect(reqs[1]!.query.get('last_etag')).toBe(gcp.etagOf('instance/preempted'));
    expect(reqs.every((r) => r.headers['metadata-flavor'] === 'Google')).toBe(true);
    expect(sink.notices).toEqual([]);
  });

  it('detects preemption within 1 s with deadline = now + 30 s', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await hanging();
    const t0 = Date.now();
    gcp.setPreempted(true);
    const { notice, at } = await sink.waitForNotice(undefined, 1_000);
    expect(at - t0).toBeLessThan(1_000);
    expect(notice).toMatchObject({ source: 'gcp', kind: 'preemption', deadlineEstimated: true, nodeId: 'node-g' });
    expect(Math.abs(notice.deadline.getTime() - (at + 30_000))).toBeLessThan(200);
  });

  it('measures detection latency over 10 changes (p50/max printed)', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await hanging();
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      gcp.setPreempted(true);
      const { at } = await sink.waitForNotice((_, when) => when >= t0, 1_000);
      latencies.push(at - t0);
      gcp.setPreempted(false);
      await sleep(100);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `GCP metadata detection latency (hanging GET): p50=${latencies[4]} ms max=${latencies[9]} ms all=${latencies.join(',')}`,
    );
    expect(latencies[9]).toBeLessThan(1_000);
  });

  it('sees a value that is already TRUE at start (plain read first)', async () => {
    gcp.setPreempted(true);
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await sink.waitForNotice(undefined, 1_000);
  });

  it('does not lose a change made between two requests (last_etag)', async () => {
    const sink = new RecordingNoticeSink();
    // Every hanging GET is delayed 300 ms on arrival: the change lands before the server sees the request.
    gcp.injectFault({ path: PREEMPTED, delayMs: 300 });
    run(provider(), sink);
    await sleep(350);
    gcp.setPreempted(true);
    await sink.waitForNotice(undefined, 1_500);
  });

  it('re-hangs after timeout_sec elapses', async () => {
    const sink = new RecordingNoticeSink();
    run(provider({ hangTimeoutSec: 1 }), sink);
    await sleep(1_400);
    expect(gcp.requests.filter((r) => r.path === PREEMPTED).length).toBeGreaterThanOrEqual(3);
    expect(gcp.waitingCount()).toBe(1);
    gcp.setPreempted(true);
    await sink.waitForNotice(undefined, 1_000);
    expect(sink.problems).toEqual([]);
  });

  it('reports TERMINATE_ON_HOST_MAINTENANCE as termination and MIGRATE as maintenance', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await hanging();
    gcp.setMaintenanceEvent('MIGRATE_ON_HOST_MAINTENANCE');
    await sink.waitForNotice((n) => n.kind === 'maintenance', 1_000);
    gcp.setMaintenanceEvent('TERMINATE_ON_HOST_MAINTENANCE');
    const { notice } = await sink.waitForNotice((n) => n.kind === 'termination', 1_000);
    expect(notice.action).toBe('TERMINATE_ON_HOST_MAINTENANCE');
  });

  it('raises one notice across two providers sharing a deduplicator, also when the value flaps', async () => {
    const raised: Notice[] = [];
    const dedup = new NoticeDeduplicator(new InMemoryDedupStore());
    for (let i = 0; i < 2; i++) {
      const c = new AbortController();
      stops.push(c);
      void watchNotices(provider(), { dedup, onNotice: (n) => void raised.push(n), signal: c.signal });
    }
    await sleep(200);
    gcp.setPreempted(true);
    await sleep(200);
    gcp.setPreempted(false);
    await sleep(200);
    gcp.setPreempted(true);
    await sleep(300);
    expect(raised).toHaveLength(1);
  });

  describe('bad input raises nothing and reports a readable problem', () => {
    const cases: [string, (s: FakeGcpMetadataServer) => void, string, RegExp][] = [
      [
        'a body that is neither TRUE nor FALSE',
        (s) => s.setValue('instance/preempted', 'yes'),
        'invalid_payload',
        /expected TRUE or FALSE/,
      ],
      [
        'lower-case true (the documented value is TRUE)',
        (s) => s.setValue('instance/preempted', 'true'),
        'invalid_payload',
        /TRUE or FALSE/,
      ],
      [
        'an unknown maintenance value',
        (s) => s.setMaintenanceEvent('REBOOT_SOMETIMES'),
        'unknown_action',
        /REBOOT_SOMETIMES/,
      ],
      [
        '503 during maintenance',
        (s) => s.injectFault({ path: PREEMPTED, status: 503, headers: { 'Metadata-Flavor': 'Google' } }),
        'unavailable',
        /503/,
      ],
      ['401 from the server', (s) => s.injectFault({ path: PREEMPTED, status: 401 }), 'unauthorized', /401/],
      [
        'an answer without Metadata-Flavor: Google (not the metadata server)',
        (s) => s.injectFault({ path: PREEMPTED, status: 200, body: 'TRUE' }),
        'wrong_server',
        /Metadata-Flavor/,
      ],
    ];
    it.each(cases)('%s', async (_name, arrange, code, message) => {
      arrange(gcp);
      const { notices, problems } = await provider().poll();
      expect(notices).toEqual([]);
      const p = problems.find((x) => x.code === code);
      expect(p).toBeDefined();
      expect(p!.message).toMatch(message);
    });

    it('keeps watching after errors and still detects the notice', async () => {
      gcp.injectFault({ path: PREEMPTED, status: 503, headers: { 'Metadata-Flavor': 'Google' }, times: 3 });
      const sink = new RecordingNoticeSink();
      run(provider(), sink);
      await sink.waitForProblem((p) => p.code === 'unavailable', 1_000);
      gcp.setPreempted(true);
      await sink.waitForNotice(undefined, 1_500);
    });
  });
});
