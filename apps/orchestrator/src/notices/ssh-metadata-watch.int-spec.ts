/**
 * The long-lived metadata watch over a real SSH session to lab node-a, against the fake IMDS on the lab bridge
 * (curl runs on the node, as it would against 169.254.169.254): SSH execs per second in exec and stream mode,
 * a notice seen within a second, and the loop's channel cut: requests fall back to exec (the notice is still
 * seen) and the loop comes back after its back-off.
 */
import { readFileSync } from 'node:fs';
import type { NodeTarget } from '@spotlift/domain';
import { AwsImdsNoticeProvider, type MetadataClient } from '@spotlift/notices';
import { FakeImdsServer, LAB_HOST_ADDRESS, labUp, RecordingNoticeSink } from '@spotlift/testing';
import { type ExecOptions, type RemoteProcess, type SpawnOptions, SshNodeShell } from '@spotlift/transport';
import { SshMetadataClient } from './ssh-metadata-client.adapter.js';
import { StreamingMetadataClient } from './ssh-metadata-watch.adapter.js';

const POLL_MS = 250;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts channels: one exec per request in exec mode, one spawn per loop in stream mode. */
class CountingShell extends SshNodeShell {
  execs = 0;
  readonly spawned: RemoteProcess[] = [];
  override exec(node: NodeTarget, command: string, opts?: ExecOptions) {
    this.execs++;
    return super.exec(node, command, opts);
  }
  override async spawn(node: NodeTarget, command: string, opts?: SpawnOptions) {
    const p = await super.spawn(node, command, opts);
    this.spawned.push(p);
    return p;
  }
}

let shell: CountingShell;
let nodeA: NodeTarget;
let imds: FakeImdsServer;
const stops: AbortController[] = [];

beforeAll(async () => {
  const lab = await labUp({ nodes: 3 });
  nodeA = lab.nodes.find((n) => n.id === 'node-a')!;
  shell = new CountingShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);
beforeEach(async () => {
  imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
  shell.execs = 0;
  shell.spawned.length = 0;
});
afterEach(async () => {
  stops.splice(0).forEach((c) => c.abort());
  await imds.stop();
});
afterAll(() => shell.close());

function watch(client: MetadataClient, pollIntervalMs = POLL_MS): RecordingNoticeSink {
  const sink = new RecordingNoticeSink();
  const stop = new AbortController();
  stops.push(stop);
  const aws = new AwsImdsNoticeProvider({ nodeId: 'node-a', client, pollIntervalMs, watchMaintenance: false });
  void aws.watch(sink, stop.signal);
  return sink;
}

function streaming(): StreamingMetadataClient {
  const exec = new SshMetadataClient(shell, nodeA, { baseUrl: imds.url });
  const client = new StreamingMetadataClient(shell, nodeA, imds.url, exec, { intervalMs: POLL_MS });
  const stop = new AbortController();
  stop.signal.addEventListener('abort', () => client.close());
  stops.push(stop);
  return client;
}

/** SSH execs per second over `ms`, after a warm-up. */
async function execRate(ms: number): Promise<number> {
  await sleep(1_500);
  const before = shell.execs;
  await sleep(ms);
  return ((shell.execs - before) * 1000) / ms;
}

describe('the metadata watch loop over a real SSH session (node-a, fake IMDS)', () => {
  it('costs no exec per poll once up (one channel), where exec mode costs one per request; a notice seen < 1 s', async () => {
    watch(new SshMetadataClient(shell, nodeA, { baseUrl: imds.url }));
    const execMode = await execRate(2_000);
    stops.splice(0).forEach((c) => c.abort());
    await sleep(500);
    shell.execs = 0;
    const client = streaming();
    const sink = watch(client);
    const streamMode = await execRate(2_000);
    const polled = imds.requestCount('/latest/meta-data/spot/instance-action');
    await sleep(1_000);
    // The loop on the node keeps polling IMDS itself, four times a second.
    expect(imds.requestCount('/latest/meta-data/spot/instance-action') - polled).toBeGreaterThanOrEqual(2);
    const t0 = Date.now();
    imds.setSpotInterruption({ action: 'terminate', time: new Date(t0 + 120_000) });
    const { at } = await sink.waitForNotice(undefined, 2_000);
    console.log(
      `metadata watch, one AWS node, poll ${POLL_MS} ms: exec mode ${execMode.toFixed(1)} SSH execs/s; ` +
        `stream mode ${streamMode.toFixed(1)} execs/s, ${client.starts} loop channel(s); notice seen after ${at - t0} ms`,
    );
    expect(execMode).toBeGreaterThanOrEqual(4);
    expect(streamMode).toBe(0);
    expect(client.starts).toBe(1);
    expect(at - t0).toBeLessThan(1_000);
  }, 30_000);

  it('its channel cut: polls fall back to exec (a notice then is still seen), and the loop comes back', async () => {
    const client = streaming();
    const sink = watch(client);
    await sleep(1_500);
    expect(client.starts).toBe(1);
    shell.spawned[0]!.stdin.destroy();
    await sleep(200);
    const t0 = Date.now();
    imds.setSpotInterruption({ action: 'terminate', time: new Date(t0 + 120_000) });
    const { at } = await sink.waitForNotice(undefined, 2_000);
    expect(at - t0).toBeLessThan(1_000);
    await sleep(2_500);
    expect(client.starts).toBe(2);
    const execs = shell.execs;
    await sleep(1_000);
    expect(shell.execs - execs).toBe(0);
  }, 30_000);

  it("a change the loop prints wakes the provider's poll at once (not at its next tick)", async () => {
    // The provider polls its client every 10 s; the loop on the node every 250 ms. Seen within a second only
    // if the loop's news starts the provider's next poll.
    const client = streaming();
    const sink = watch(client, 10_000);
    await sleep(1_500);
    const t0 = Date.now();
    imds.setSpotInterruption({ action: 'terminate', time: new Date(t0 + 120_000) });
    const { at } = await sink.waitForNotice(undefined, 3_000);
    console.log(`provider polling every 10 s through the stream: notice seen after ${at - t0} ms`);
    expect(at - t0).toBeLessThan(1_000);
  }, 30_000);
});
