import { FakeKubernetesApiServer, RecordingNoticeSink } from '../../../testing/src/fakes/index.js';
import { InMemoryDedupStore } from '../dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from '../dedup/notice-deduplicator.js';
import type { Notice } from '../notice.js';
import { watchNotices } from '../watch-notices.js';
import { ClientNodeKubeApi } from './client-node-kube-api.adapter.js';
import { KubeNodeNoticeProvider, type KubeNodeNoticeProviderOptions } from './kube-node-notice-provider.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SPOT_ITN = 'aws-node-termination-handler/spot-itn';

describe('KubeNodeNoticeProvider with @kubernetes/client-node against FakeKubernetesApiServer', () => {
  let kube: FakeKubernetesApiServer;
  const stops: AbortController[] = [];

  beforeEach(async () => {
    kube = await new FakeKubernetesApiServer('test-token').start();
    kube.addNode('ip-10-0-0-1', { labels: { 'spotlift.io/node-id': 'node-1' } });
    kube.addNode('ip-10-0-0-2', { labels: { 'spotlift.io/node-id': 'node-2' } });
    kube.addNode('not-ours');
  });
  afterEach(async () => {
    stops.splice(0).forEach((c) => c.abort());
    await kube.stop();
  });

  const provider = async (opts: Partial<KubeNodeNoticeProviderOptions> = {}) =>
    new KubeNodeNoticeProvider({
      api: await ClientNodeKubeApi.forServer({ server: kube.url, token: 'test-token', skipTLSVerify: true }),
      nodeIdOf: (_name, node) => node.metadata.labels?.['spotlift.io/node-id'],
      backoff: { baseMs: 50, maxMs: 500 },
      ...opts,
    });
  const run = (p: KubeNodeNoticeProvider, sink: RecordingNoticeSink) => {
    const c = new AbortController();
    stops.push(c);
    void p.watch(sink, c.signal);
  };
  const watching = async (n = 1) => {
    for (let i = 0; i < 100 && kube.activeWatches < n; i++) await sleep(20);
    expect(kube.activeWatches).toBe(n);
  };

  it('lists, then watches from the list resourceVersion with bookmarks allowed', async () => {
    const p = await provider();
    run(p, new RecordingNoticeSink());
    await watching();
    const list = kube.requests.find((r) => r.path === '/api/v1/nodes' && r.query.get('watch') === null)!;
    const watch = kube.requests.find((r) => r.query.get('watch') === 'true')!;
    expect(list.headers.authorization).toBe('Bearer test-token');
    expect(watch.query.get('resourceVersion')).toBe(kube.resourceVersion);
    expect(watch.query.get('allowWatchBookmarks')).toBe('true');
  });

  it('detects an NTH spot-itn taint within 1 s, mapped to our node id, with an estimated deadline', async () => {
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    await watching();
    const t0 = Date.now();
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN, value: 'spot-itn-1234', effect: 'NoSchedule' });
    const { notice, at } = await sink.waitForNotice(undefined, 1_000);
    expect(at - t0).toBeLessThan(1_000);
    expect(notice).toMatchObject({ nodeId: 'node-1', source: 'k8s', kind: 'preemption', deadlineEstimated: true });
    expect(Math.abs(notice.deadline.getTime() - (at + 120_000))).toBeLessThan(500);
  });

  it('measures detection latency over 10 taints (p50/max printed)', async () => {
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    await watching();
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      kube.addTaint('ip-10-0-0-2', { key: 'karpenter.sh/disrupted', effect: 'NoSchedule' });
      const { at } = await sink.waitForNotice((_, when) => when >= t0, 1_000);
      latencies.push(at - t0);
      kube.removeTaint('ip-10-0-0-2', 'karpenter.sh/disrupted');
      await sleep(50);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `Kubernetes watch detection latency: p50=${latencies[4]} ms max=${latencies[9]} ms all=${latencies.join(',')}`,
    );
    expect(latencies[9]).toBeLessThan(1_000);
  });

  it('ignores nodes the mapping does not know, and a taint that is not configured', async () => {
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    await watching();
    kube.addTaint('not-ours', { key: SPOT_ITN });
    kube.addTaint('ip-10-0-0-1', { key: 'example.com/something-else' });
    await sleep(300);
    expect(sink.notices).toEqual([]);
  });

  it('uses the deadline of the AKS PreemptionScheduled condition message', async () => {
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    await watching();
    const when = new Date(Math.floor(Date.now() / 1000) * 1000 + 25_000);
    kube.setCondition('ip-10-0-0-2', {
      type: 'PreemptionScheduled',
      status: 'True',
      reason: 'SpotEvictionIncoming',
      message: `Preempt Scheduled: ${when.toUTCString()}. EventId: 5D2B1A4C-0000-0000-0000-000000000000`,
      lastTransitionTime: new Date().toISOString(),
    });
    const { notice } = await sink.waitForNotice(undefined, 1_000);
    expect(notice).toMatchObject({ nodeId: 'node-2', kind: 'preemption', deadlineEstimated: false });
    expect(notice.deadline.getTime()).toBe(when.getTime());
  });

  it('survives a dropped connection and still sees a taint added afterwards', async () => {
    const p = await provider();
    const sink = new RecordingNoticeSink();
    run(p, sink);
    await watching();
    kube.dropConnections();
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    const { notice } = await sink.waitForNotice(undefined, 2_000);
    expect(notice.nodeId).toBe('node-1');
    expect(p.stats.reconnects).toBeGreaterThanOrEqual(1);
    // Reconnected from the last resourceVersion, not by relisting.
    expect(p.stats.lists).toBe(1);
  });

  it('relists after a 410 Gone ERROR event and still sees a taint added afterwards', async () => {
    const p = await provider();
    const sink = new RecordingNoticeSink();
    run(p, sink);
    await watching();
    kube.expireWatches();
    await watching();
    kube.addTaint('ip-10-0-0-2', { key: 'cloud.google.com/impending-node-termination' });
    const { notice } = await sink.waitForNotice(undefined, 2_000);
    expect(notice).toMatchObject({ nodeId: 'node-2', kind: 'preemption' });
    expect(p.stats.relistsAfterGone).toBe(1);
    expect(p.stats.lists).toBe(2);
  });

  it('relists when it reconnects with a compacted resourceVersion, and sees a change made while it was away', async () => {
    const p = await provider();
    const sink = new RecordingNoticeSink();
    run(p, sink);
    await watching();
    // The change and the compaction happen while the watch is down: only a relist can reveal the taint.
    kube.injectFault({ path: '/api/v1/nodes', status: 503, body: '{"kind":"Status","code":503}', times: 2 });
    kube.dropConnections();
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    kube.compact();
    const { notice } = await sink.waitForNotice(undefined, 3_000);
    expect(notice.nodeId).toBe('node-1');
    expect(sink.problems.some((x) => x.code === 'watch' && x.status === 503 && /HTTP 503/.test(x.message))).toBe(true);
    expect(p.stats.relistsAfterGone).toBe(1);
  });

  it('survives a corrupted line in the stream', async () => {
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    await watching();
    kube.sendGarbage();
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    await sink.waitForNotice(undefined, 1_000);
  });

  it('reconnects a silent watch after the idle timeout', async () => {
    const p = await provider({ idleTimeoutMs: 300 });
    const sink = new RecordingNoticeSink();
    run(p, sink);
    await sleep(800);
    expect(p.stats.idleTimeouts).toBeGreaterThanOrEqual(1);
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    await sink.waitForNotice(undefined, 1_000);
  });

  it('retries the list with backoff while the API server refuses, then works', async () => {
    kube.injectFault({ path: '/api/v1/nodes', status: 503, body: 'unavailable', times: 3 });
    const sink = new RecordingNoticeSink();
    run(await provider(), sink);
    const problem = await sink.waitForProblem((x) => x.code === 'watch', 1_000);
    expect(problem.message).toMatch(/listing nodes failed/);
    await watching();
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    await sink.waitForNotice(undefined, 1_000);
  });

  it('raises one notice for a taint that flaps, across two providers sharing a deduplicator', async () => {
    const raised: Notice[] = [];
    const dedup = new NoticeDeduplicator(new InMemoryDedupStore());
    for (let i = 0; i < 2; i++) {
      const c = new AbortController();
      stops.push(c);
      void watchNotices(await provider(), { dedup, onNotice: (n) => void raised.push(n), signal: c.signal });
    }
    await watching(2);
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    await sleep(150);
    kube.removeTaint('ip-10-0-0-1', SPOT_ITN);
    await sleep(150);
    kube.addTaint('ip-10-0-0-1', { key: SPOT_ITN });
    await sleep(300);
    expect(raised).toHaveLength(1);
  });
});
