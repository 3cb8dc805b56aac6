import { FakeAzureScheduledEventsServer } from './fake-azure-scheduled-events-server.js';
import { FakeGcpMetadataServer } from './fake-gcp-metadata-server.js';
import { FakeImdsServer } from './fake-imds-server.js';
import { FakeKubernetesApiServer } from './fake-kubernetes-api-server.js';

// Wire-format conformance of the fakes themselves, with raw fetch: the providers' tests are only as good
// as the fakes are faithful to the documented formats.
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('FakeImdsServer (IMDSv2)', () => {
  let s: FakeImdsServer;
  beforeEach(async () => (s = await new FakeImdsServer().start()));
  afterEach(() => s.stop());
  const put = (headers: Record<string, string>) => fetch(`${s.url}/latest/api/token`, { method: 'PUT', headers });
  const get = (path: string, token?: string) =>
    fetch(s.url + path, { headers: token ? { 'X-aws-ec2-metadata-token': token } : {} });

  it('issues tokens only on PUT with a TTL of 1..21600, echoing it', async () => {
    expect((await put({})).status).toBe(400);
    expect((await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '0' })).status).toBe(400);
    expect((await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '21601' })).status).toBe(400);
    expect((await put({ 'X-aws-ec2-metadata-token-ttl-seconds': 'abc' })).status).toBe(400);
    expect((await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '60', 'X-Forwarded-For': '1.2.3.4' })).status).toBe(
      403,
    );
    expect((await fetch(`${s.url}/latest/api/token`)).status).toBe(405);
    const ok = await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '21600' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('x-aws-ec2-metadata-token-ttl-seconds')).toBe('21600');
    expect(Buffer.from(await ok.text(), 'base64')).toHaveLength(32);
  });

  it('answers 401 without a token, with an unknown one and with an expired one; 404 before a notice', async () => {
    expect((await get('/latest/meta-data/spot/instance-action')).status).toBe(401);
    expect((await get('/latest/meta-data/spot/instance-action', 'bogus')).status).toBe(401);
    const token = await (await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '1' })).text();
    const notFound = await get('/latest/meta-data/spot/instance-action', token);
    expect(notFound.status).toBe(404);
    expect(await notFound.text()).toContain('404 - Not Found');
    await sleep(1_050);
    expect((await get('/latest/meta-data/spot/instance-action', token)).status).toBe(401);
  });

  it('recomputes `time` (request time + 2 min) on every request, like AEMM', async () => {
    const token = await (await put({ 'X-aws-ec2-metadata-token-ttl-seconds': '60' })).text();
    s.setSpotInterruption();
    const a = (await (await get('/latest/meta-data/spot/instance-action', token)).json()) as {
      action: string;
      time: string;
    };
    await sleep(1_050);
    const b = (await (await get('/latest/meta-data/spot/instance-action', token)).json()) as { time: string };
    expect(a.action).toBe('terminate');
    expect(a.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(Math.abs(Date.parse(a.time) - (Date.now() + 120_000))).toBeLessThan(3_000);
    expect(b.time).not.toBe(a.time);
  });
});

describe('FakeGcpMetadataServer', () => {
  let s: FakeGcpMetadataServer;
  beforeEach(async () => (s = await new FakeGcpMetadataServer().start()));
  afterEach(() => s.stop());
  const get = (q = '', headers: Record<string, string> = { 'Metadata-Flavor': 'Google' }) =>
    fetch(`${s.url}/computeMetadata/v1/instance/preempted${q}`, { headers });

  it('requires Metadata-Flavor: Google and answers with it and an ETag', async () => {
    expect((await get('', {})).status).toBe(403);
    expect((await get('', { 'Metadata-Flavor': 'google' })).status).toBe(403);
    const res = await get();
    expect(res.status).toBe(200);
    expect(res.headers.get('metadata-flavor')).toBe('Google');
    expect(res.headers.get('etag')).toBe(s.etagOf('instance/preempted'));
    expect(await res.text()).toBe('FALSE');
  });

  it('hangs until a change, returns at once for a stale last_etag, and times out with the current value', async () => {
    const etag = s.etagOf('instance/preempted')!;
    const pending = get(`?wait_for_change=true&last_etag=${etag}`);
    await sleep(200);
    expect(s.waitingCount()).toBe(1);
    s.setPreempted(true);
    const changed = await pending;
    expect(await changed.text()).toBe('TRUE');
    expect(changed.headers.get('etag')).not.toBe(etag);

    const t0 = Date.now();
    expect(await (await get(`?wait_for_change=true&last_etag=${etag}`)).text()).toBe('TRUE');
    expect(Date.now() - t0).toBeLessThan(200);

    const t1 = Date.now();
    const timedOut = await get(`?wait_for_change=true&last_etag=${s.etagOf('instance/preempted')}&timeout_sec=1`);
    expect(await timedOut.text()).toBe('TRUE');
    expect(Date.now() - t1).toBeGreaterThanOrEqual(950);
  });
});

describe('FakeAzureScheduledEventsServer', () => {
  let s: FakeAzureScheduledEventsServer;
  beforeEach(async () => (s = await new FakeAzureScheduledEventsServer().start()));
  afterEach(() => s.stop());
  const url = () => `${s.url}/metadata/scheduledevents?api-version=2020-07-01`;

  it('requires Metadata: true and an api-version', async () => {
    expect((await fetch(url())).status).toBe(400);
    expect((await fetch(`${s.url}/metadata/scheduledevents`, { headers: { Metadata: 'true' } })).status).toBe(400);
    expect((await fetch(url(), { headers: { Metadata: 'true' } })).status).toBe(200);
  });

  it('bumps DocumentIncarnation on every change and serves RFC 1123 NotBefore', async () => {
    const read = async () =>
      (await (await fetch(url(), { headers: { Metadata: 'true' } })).json()) as {
        DocumentIncarnation: number;
        Events: { NotBefore: string }[];
      };
    const first = await read();
    const id = s.scheduleEvent();
    const second = await read();
    expect(second.DocumentIncarnation).toBe(first.DocumentIncarnation + 1);
    expect(second.Events[0]!.NotBefore).toMatch(/^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/);
    s.removeEvent(id);
    expect((await read()).DocumentIncarnation).toBe(first.DocumentIncarnation + 2);
  });

  it('records well-formed StartRequests and refuses malformed ones', async () => {
    const id = s.scheduleEvent();
    const post = (body: string) => fetch(url(), { method: 'POST', headers: { Metadata: 'true' }, body });
    expect((await post('{"StartRequests":[{}]}')).status).toBe(400);
    expect((await post('not json')).status).toBe(400);
    expect((await post(JSON.stringify({ StartRequests: [{ EventId: id }] }))).status).toBe(200);
    expect(s.acknowledgements.map((a) => a.eventId)).toEqual([id]);
  });
});

describe('FakeKubernetesApiServer', () => {
  let s: FakeKubernetesApiServer;
  beforeEach(async () => {
    s = await new FakeKubernetesApiServer().start();
    s.addNode('a');
  });
  afterEach(() => s.stop());

  /** Reads watch lines until `n` arrived or the stream ends. */
  type WatchLine = { type: string; object: { code?: number; metadata: { resourceVersion: string } } };
  async function readLines(res: Response, n: number): Promise<WatchLine[]> {
    const out: string[] = [];
    const reader = res.body!.getReader();
    let buf = '';
    while (out.length < n) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += new TextDecoder().decode(value);
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        out.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
    await reader.cancel();
    return out.map((l) => JSON.parse(l) as WatchLine);
  }

  it('lists with a resourceVersion and streams changes after it as JSON lines', async () => {
    const list = (await (await fetch(`${s.url}/api/v1/nodes`)).json()) as {
      kind: string;
      metadata: { resourceVersion: string };
      items: unknown[];
    };
    expect(list.kind).toBe('NodeList');
    expect(list.items).toHaveLength(1);
    const res = await fetch(
      `${s.url}/api/v1/nodes?watch=true&resourceVersion=${list.metadata.resourceVersion}&allowWatchBookmarks=true`,
    );
    s.addTaint('a', { key: 'k' });
    s.sendBookmarks();
    s.deleteNode('a');
    const events = await readLines(res, 3);
    expect(events.map((e) => e.type)).toEqual(['MODIFIED', 'BOOKMARK', 'DELETED']);
    expect(Number(events[0]!.object.metadata.resourceVersion)).toBeGreaterThan(Number(list.metadata.resourceVersion));
  });

  it('answers a watch from a compacted resourceVersion with ERROR 410', async () => {
    const old = s.resourceVersion;
    s.addTaint('a', { key: 'k' });
    s.compact();
    const events = await readLines(await fetch(`${s.url}/api/v1/nodes?watch=true&resourceVersion=${old}`), 1);
    expect(events[0]).toMatchObject({ type: 'ERROR', object: { kind: 'Status', code: 410, reason: 'Expired' } });
  });

  it('closes a watch after timeoutSeconds', async () => {
    const res = await fetch(`${s.url}/api/v1/nodes?watch=true&resourceVersion=${s.resourceVersion}&timeoutSeconds=1`);
    const t0 = Date.now();
    expect(await res.text()).toBe('');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(900);
  });
});
