/**
 * The SSH metadata client against the metadata fakes: each fake listens on the lab bridge and is reached
 * by curl run on node-a over a real SSH session, as a node's link-local metadata service would be.
 */
import { readFileSync } from 'node:fs';
import type { NodeTarget } from '@spotlift/domain';
import {
  AwsImdsNoticeProvider,
  AzureScheduledEventsNoticeProvider,
  GcpMetadataNoticeProvider,
  MetadataTransportError,
  NoticeSourceError,
} from '@spotlift/notices';
import {
  FakeAzureScheduledEventsServer,
  FakeGcpMetadataServer,
  FakeImdsServer,
  LAB_HOST_ADDRESS,
  labUp,
  RecordingNoticeSink,
} from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import { SshMetadataClient } from './ssh-metadata-client.adapter.js';

let shell: SshNodeShell;
let nodeA: NodeTarget;

beforeAll(async () => {
  const lab = await labUp({ nodes: 3 });
  nodeA = lab.nodes.find((n) => n.id === 'node-a')!;
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);

afterAll(() => shell.close());

describe('SshMetadataClient + AWS IMDSv2 fake', () => {
  let imds: FakeImdsServer;
  let aws: AwsImdsNoticeProvider;
  beforeEach(async () => {
    imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
    const client = new SshMetadataClient(shell, nodeA, { baseUrl: imds.url });
    aws = new AwsImdsNoticeProvider({ nodeId: 'node-a', client, watchMaintenance: false });
  });
  afterEach(() => imds.stop());

  it('answers nothing before a notice, then the notice with its own deadline; the token is sent as a header', async () => {
    expect(await aws.poll()).toEqual({ notices: [], problems: [] });
    const time = new Date(Math.floor(Date.now() / 1000) * 1000 + 120_000);
    imds.setSpotInterruption({ time });
    const { notices, problems } = await aws.poll();
    expect(problems).toEqual([]);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({ nodeId: 'node-a', source: 'aws', kind: 'preemption', action: 'terminate' });
    expect(notices[0]!.deadline.getTime()).toBe(time.getTime());
    expect(imds.tokensIssued).toBe(1);
    expect(imds.requests.filter((r) => r.method === 'GET').every((r) => r.headers['x-aws-ec2-metadata-token'])).toBe(
      true,
    );
  });

  it('gets a new token after IMDS forgets it (401), and reports 503 and a garbled body as problems', async () => {
    await aws.poll();
    imds.expireTokens();
    expect((await aws.poll()).problems).toEqual([]);
    expect(imds.tokensIssued).toBe(2);
    imds.injectFault({ path: '/latest/meta-data/spot/instance-action', status: 503, times: 1 });
    expect((await aws.poll()).problems.map((p) => p.code)).toEqual(['unavailable']);
    imds.injectFault({
      path: '/latest/meta-data/spot/instance-action',
      status: 200,
      body: '{"action": "terminate", ',
      times: 1,
    });
    const bad = await aws.poll();
    expect(bad.notices).toEqual([]);
    expect(bad.problems.map((p) => p.code)).toEqual(['malformed_json']);
  });

  it('turns an unreachable endpoint into a transport error, not a notice', async () => {
    const client = new SshMetadataClient(shell, nodeA, { baseUrl: 'http://10.77.0.1:1' });
    await expect(
      client.get('/latest/meta-data/spot/instance-action', undefined, { timeoutMs: 1_000 }),
    ).rejects.toBeInstanceOf(MetadataTransportError);
  });
});

describe('SshMetadataClient + GCP hanging GET fake', () => {
  it('sees a preemption through a hanging GET held open over SSH', async () => {
    const gcp = await new FakeGcpMetadataServer().start({ host: LAB_HOST_ADDRESS });
    const client = new SshMetadataClient(shell, nodeA, { baseUrl: gcp.url });
    const provider = new GcpMetadataNoticeProvider({
      nodeId: 'node-a',
      client,
      watchMaintenance: false,
      hangTimeoutSec: 20,
    });
    const sink = new RecordingNoticeSink();
    const stop = new AbortController();
    const watching = provider.watch(sink, stop.signal);
    try {
      // Wait until a hanging GET (with last_etag) is open, then flip the value.
      for (let i = 0; i < 100 && !gcp.requests.some((r) => r.query.get('wait_for_change') === 'true'); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const flipped = Date.now();
      gcp.setPreempted(true);
      const { notice, at } = await sink.waitForNotice(() => true, 5_000);
      expect(notice).toMatchObject({ source: 'gcp', kind: 'preemption', deadlineEstimated: true });
      expect(at - flipped).toBeLessThan(1_000);
      expect(sink.problems).toEqual([]);
    } finally {
      stop.abort();
      await watching;
      await gcp.stop();
    }
  });
});

describe('SshMetadataClient + Azure Scheduled Events fake', () => {
  it('raises our Preempt, acknowledges only our own event', async () => {
    const azure = await new FakeAzureScheduledEventsServer().start({ host: LAB_HOST_ADDRESS });
    try {
      const client = new SshMetadataClient(shell, nodeA, { baseUrl: azure.url });
      const provider = new AzureScheduledEventsNoticeProvider({ nodeId: 'node-a', vmName: 'vm-a', client });
      const ours = azure.scheduleEvent({ Resources: ['vm-a'], NotBefore: new Date(Date.now() + 60_000) });
      const theirs = azure.scheduleEvent({ Resources: ['vm-other'] });
      const { notices, problems } = await provider.poll();
      expect(problems).toEqual([]);
      expect(notices.map((n) => n.kind)).toEqual(['preemption']);
      await expect(provider.acknowledge(theirs)).rejects.toBeInstanceOf(NoticeSourceError);
      await provider.acknowledge(ours);
      expect(azure.acknowledgements.map((a) => a.eventId)).toEqual([ours]);
    } finally {
      await azure.stop();
    }
  });
});
