import { FakeAzureScheduledEventsServer, RecordingNoticeSink } from '../../../testing/src/fakes/index.js';
import { InMemoryDedupStore } from '../dedup/in-memory-dedup-store.js';
import { NoticeDeduplicator } from '../dedup/notice-deduplicator.js';
import { HttpMetadataClient } from '../http-metadata-client.adapter.js';
import type { Notice } from '../notice.js';
import { NoticeSourceError } from '../notice-source.error.js';
import { watchNotices } from '../watch-notices.js';
import {
  AzureScheduledEventsNoticeProvider,
  type AzureScheduledEventsNoticeProviderOptions,
} from './azure-scheduled-events-provider.js';

const PATH = '/metadata/scheduledevents';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const wholeSeconds = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);

describe('AzureScheduledEventsNoticeProvider against FakeAzureScheduledEventsServer (loopback)', () => {
  let azure: FakeAzureScheduledEventsServer;
  const stops: AbortController[] = [];

  beforeEach(async () => {
    azure = await new FakeAzureScheduledEventsServer().start();
  });
  afterEach(async () => {
    stops.splice(0).forEach((c) => c.abort());
    await azure.stop();
  });

  const provider = (opts: Partial<AzureScheduledEventsNoticeProviderOptions> = {}) =>
    new AzureScheduledEventsNoticeProvider({
      nodeId: 'node-z',
      vmName: 'vm-spot',
      client: new HttpMetadataClient({ baseUrl: azure.url }),
      ...opts,
    });
  const run = (p: AzureScheduledEventsNoticeProvider, sink: RecordingNoticeSink) => {
    const c = new AbortController();
    stops.push(c);
    void p.watch(sink, c.signal);
  };

  it('asks with api-version=2020-07-01 and Metadata: true; an empty document raises nothing', async () => {
    const p = provider();
    expect(await p.poll()).toEqual({ notices: [], problems: [] });
    const req = azure.requests[0]!;
    expect(req.query.get('api-version')).toBe('2020-07-01');
    expect(req.headers.metadata).toBe('true');
    expect(p.documentIncarnation).toBe(azure.documentIncarnation);
  });

  it('detects a Preempt for our VM within 1 s, with the deadline from NotBefore', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    await sleep(600);
    const notBefore = wholeSeconds(Date.now() + 30_000);
    const t0 = Date.now();
    const id = azure.scheduleEvent({ EventType: 'Preempt', Resources: ['vm-spot'], NotBefore: notBefore });
    const { notice, at } = await sink.waitForNotice(undefined, 1_000);
    expect(at - t0).toBeLessThan(1_000);
    expect(notice).toMatchObject({ source: 'azure', kind: 'preemption', action: 'Preempt', deadlineEstimated: false });
    expect(notice.deadline.getTime()).toBe(notBefore.getTime());
    expect(notice.dedupKey).toContain(id);
  });

  it('measures detection latency over 10 events (p50/max printed)', async () => {
    const sink = new RecordingNoticeSink();
    run(provider(), sink);
    const latencies: number[] = [];
    for (let i = 0; i < 10; i++) {
      await sleep(300 + Math.random() * 500);
      const t0 = Date.now();
      const id = azure.scheduleEvent();
      const { at } = await sink.waitForNotice((n) => n.dedupKey.endsWith(id), 1_000);
      latencies.push(at - t0);
      azure.removeEvent(id);
    }
    latencies.sort((a, b) => a - b);
    console.log(
      `Azure Scheduled Events detection latency (poll 500 ms): p50=${latencies[4]} ms max=${latencies[9]} ms all=${latencies.join(',')}`,
    );
    expect(latencies[9]).toBeLessThan(1_000);
  }, 20_000);

  it('ignores events for other VMs of the placement group', async () => {
    azure.scheduleEvent({ Resources: ['vm-other'] });
    const { notices, problems } = await provider().poll();
    expect(notices).toEqual([]);
    expect(problems).toEqual([]);
  });

  it('maps a started event (blank NotBefore) to a deadline of now', async () => {
    const id = azure.scheduleEvent({ EventType: 'Terminate' });
    azure.startEvent(id);
    const t = Date.now();
    const { notices } = await provider().poll();
    expect(notices[0]).toMatchObject({ kind: 'termination', action: 'Terminate' });
    expect(Math.abs(notices[0]!.deadline.getTime() - t)).toBeLessThan(500);
  });

  it('acknowledges only our own event, with the documented StartRequests body', async () => {
    const ours = azure.scheduleEvent({ Resources: ['vm-spot', 'vm-other'] });
    const theirs = azure.scheduleEvent({ Resources: ['vm-other'] });
    const p = provider();
    await p.poll();
    expect(p.ownEvents().map((e) => e.EventId)).toEqual([ours]);
    await expect(p.acknowledge(theirs)).rejects.toBeInstanceOf(NoticeSourceError);
    await expect(p.acknowledge('not-an-event')).rejects.toThrow(/refusing to acknowledge/);
    await p.acknowledge(ours);
    expect(azure.acknowledgements.map((a) => a.eventId)).toEqual([ours]);
    const post = azure.requests.find((r) => r.method === 'POST')!;
    expect(JSON.parse(post.body)).toEqual({ StartRequests: [{ EventId: ours }] });
    expect(post.headers.metadata).toBe('true');
  });

  it('raises one notice per event across two providers, re-polls and flapping', async () => {
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
    const event = { EventId: 'A1B2C3D4-0000-0000-0000-000000000001', NotBefore: new Date(Date.now() + 60_000) };
    azure.scheduleEvent(event);
    await sleep(400);
    azure.removeEvent(event.EventId);
    await sleep(300);
    azure.scheduleEvent(event);
    await sleep(400);
    expect(raised).toHaveLength(1);
  });

  describe('bad input raises nothing and reports a readable problem', () => {
    const cases: [string, (s: FakeAzureScheduledEventsServer) => void, string, RegExp][] = [
      [
        'malformed JSON',
        (s) => s.injectFault({ path: PATH, status: 200, body: '{"DocumentIncarnation": 3, "Events": [' }),
        'malformed_json',
        /not JSON/,
      ],
      [
        'a document without DocumentIncarnation',
        (s) => s.injectFault({ path: PATH, status: 200, body: '{"Events": []}' }),
        'invalid_payload',
        /DocumentIncarnation/,
      ],
      [
        'NotBefore in the past',
        (s) => void s.scheduleEvent({ NotBefore: new Date(Date.now() - 600_000) }),
        'stale',
        /in the past/,
      ],
      [
        'NotBefore that is not RFC 1123',
        (s) => void s.scheduleEvent({ NotBefore: '2026-08-01T05:41:02Z' }),
        'invalid_payload',
        /RFC 1123/,
      ],
      ['an unknown EventType', (s) => void s.scheduleEvent({ EventType: 'Explode' }), 'unknown_action', /'Explode'/],
      [
        'an unknown EventStatus',
        (s) => void s.scheduleEvent({ EventStatus: 'Completed' }),
        'invalid_payload',
        /EventStatus/,
      ],
      ['503 from the metadata service', (s) => s.injectFault({ path: PATH, status: 503 }), 'unavailable', /503/],
      ['401 from the metadata service', (s) => s.injectFault({ path: PATH, status: 401 }), 'unauthorized', /401/],
      [
        '400 (as without the Metadata header)',
        (s) => s.injectFault({ path: PATH, status: 400, body: '{"error":"Bad request"}' }),
        'http_status',
        /400/,
      ],
    ];
    it.each(cases)('%s', async (_name, arrange, code, message) => {
      arrange(azure);
      const { notices, problems } = await provider().poll();
      expect(notices).toEqual([]);
      const p = problems.find((x) => x.code === code);
      expect(p).toBeDefined();
      expect(p!.message).toMatch(message);
    });
  });
});
