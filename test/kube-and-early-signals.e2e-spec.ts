/**
 * Kubernetes cordon, early signals and nodes registered later, for real: the orchestrator in-process with real
 * Redis, real sshd lab nodes and real CRIU. Fakes only where nothing real can run here: the Kubernetes API
 * (FakeKubernetesApiServer: list + watch + PATCH, wire format of the API server) and the IMDS
 * (FakeImdsServer on the lab bridge, polled by curl on the node over SSH).
 *
 * 1. A rebalance recommendation under `low-risk-first` drains node-a and moves only its low-priority
 *    workload; the high-priority one stays (no soft-dirty on this kernel: pre-copy unavailable, said so).
 * 2. A spot-itn taint on node-a's Kubernetes Node then evacuates the rest and cordons the Node.
 * 3. node-c, added by `POST /nodes` with a metadata source after boot, is watched without a restart.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvacuationRecord, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import {
  FakeImdsServer,
  FakeKubernetesApiServer,
  LAB_HOST_ADDRESS,
  nodeAddress,
  nodeOfPid,
  type HeartbeatCollector,
  type LabConfig,
} from '@spotlift/testing';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 16403;
const KUBE_TOKEN = `kube-${randomBytes(8).toString('hex')}`;
const SPOT_ITN = 'aws-node-termination-handler/spot-itn';

let env: E2eEnv;
let lab: LabConfig;
let collector: HeartbeatCollector;
let kube: FakeKubernetesApiServer;
let imds: FakeImdsServer;
let orch: Orchestrator;
const workloads: Record<string, WorkloadRecord> = {};

const evacuationOf = (nodeId: string, kind: string) =>
  until(
    `an evacuation of ${nodeId} (${kind})`,
    async () =>
      (await orch.api<EvacuationRecord[]>('GET', '/evacuations')).body.find(
        (e) => e.nodeId === nodeId && e.notice.kind === kind,
      ),
    15_000,
    50,
  );

const finished = (id: string) =>
  until(
    `evacuation ${id} to finish`,
    async () => {
      const e = (await orch.api<EvacuationRecord>('GET', `/evacuations/${id}`)).body;
      return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
    },
    120_000,
    250,
  );

/** The cordon is written when the Kubernetes API answered; the evacuation does not wait for it. */
const cordonOf = (id: string) =>
  until(
    `the cordon of ${id}`,
    async () => (await orch.api<EvacuationRecord>('GET', `/evacuations/${id}`)).body.cordon,
    10_000,
  );

const nodeState = async (id: string) => (await orch.api<NodeRecord>('GET', `/nodes/${id}`)).body.state;

beforeAll(async () => {
  kube = await new FakeKubernetesApiServer(KUBE_TOKEN).start();
  for (const id of ['node-a', 'node-b', 'node-c']) kube.addNode(id, { labels: { 'kubernetes.io/hostname': id } });
  const tokenPath = join(tmpdir(), `spotlift-kube-token-${process.pid}`);
  writeFileSync(tokenPath, `${KUBE_TOKEN}\n`, { mode: 0o600 });
  env = await setupE2e({
    redisPort: REDIS_PORT,
    config: async (l) => {
      imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
      // node-c is not in the config file: it is registered over REST in the third test.
      return {
        ...l,
        nodes: l.nodes.filter((n) => n.id !== 'node-c'),
        evacuation: { earlySignalPolicy: 'low-risk-first', lowRiskMaxPriority: 3 },
      };
    },
    // The fake speaks plain HTTP, which client-node only allows with TLS verification off.
    env: { SPOTLIFT_K8S_API_URL: kube.url, SPOTLIFT_K8S_TOKEN_PATH: tokenPath, SPOTLIFT_K8S_SKIP_TLS_VERIFY: 'true' },
  });
  ({ lab, collector, orch } = env);
}, 240_000);

afterAll(async () => {
  await env?.teardown();
  await imds?.stop();
  await kube?.stop();
}, 120_000);

async function launch(name: string, priority: number): Promise<WorkloadRecord> {
  const { workload } = await env.launch(name, 'node-a', {
    memMiB: 16,
    fields: { priority, dirtyRateBytesPerSec: 1_048_576 },
  });
  expect(workload).toMatchObject({ priority, dirtyRateBytesPerSec: 1_048_576 });
  workloads[name] = workload;
  return workload;
}

/** The job's migration completed, the tree runs on the destination only, heartbeats gap-free across. */
async function expectMoved(evac: EvacuationRecord, w: WorkloadRecord, since: number): Promise<void> {
  const job = evac.jobs.find((j) => j.workloadId === w.id)!;
  expect(job).toMatchObject({ state: 'completed', destinationNodeId: 'node-b' });
  const m = (await orch.api<MigrationRecord>('GET', `/migrations/${job.migrationId}`)).body;
  expect(m).toMatchObject({ state: 'completed', evacuationId: evac.id, sourceNodeId: 'node-a' });
  expect(nodeOfPid(m.restoredPid!)).toBe('node-b');
  await collector.waitForCount(w.name, 5, { from: nodeAddress('node-b'), since: Date.now(), timeoutMs: 15_000 });
  expect(collector.isSeqGapFree(w.name, since - 2_000)).toBe(true);
  expect(collector.anyNotOk(w.name)).toBe(false);
}

describe('early signals, Kubernetes cordon, nodes registered later (real CRIU; fake Kubernetes API and IMDS)', () => {
  it('low-risk-first: a rebalance drains node-a and moves only the low-priority workload', async () => {
    const low = await launch('early-low', 2);
    const high = await launch('early-high', 9);
    const before = Date.now();
    const pushed = await orch.api<{ duplicate: boolean; evacuation: EvacuationRecord }>('POST', '/notices', {
      nodeId: 'node-a',
      kind: 'rebalance',
      secondsUntil: 120,
      reason: 'EC2 rebalance recommendation',
    });
    expect(pushed.status).toBe(202);
    expect(pushed.body.evacuation.policy).toBe('low-risk-first');
    expect(await nodeState('node-a')).toBe('draining');

    const done = await finished(pushed.body.evacuation.id);
    if (done.state !== 'completed') console.log(JSON.stringify({ events: done.events, jobs: done.jobs }, null, 1));
    expect(done.state).toBe('completed');
    expect(done.jobs.map((j) => j.workloadId)).toEqual([low.id]);
    expect(done.jobs[0]!.priority).toBe(2);
    const scope = Object.fromEntries(done.earlySignal!.workloads.map((w) => [w.workloadId, w]));
    expect(scope[low.id]).toMatchObject({ action: 'move', priority: 2 });
    // This machine's kernel has no soft-dirty tracking: no pre-copy warm-up, and the record says why.
    expect(scope[high.id]).toMatchObject({ action: 'hold', priority: 9 });
    expect(scope[high.id]!.reason).toMatch(/pre-copy is unavailable on node-a \(no soft-dirty tracking/);
    await expectMoved(done, low, before);
    // The held workload still runs where it was.
    await collector.waitForCount(high.name, 3, { from: nodeAddress('node-a'), since: Date.now(), timeoutMs: 10_000 });
    // A cordon goes with every evacuation that takes the node out of placement.
    expect(await cordonOf(done.id)).toMatchObject({ kubeNode: 'node-a', outcome: 'cordoned' });
  });

  it('a spot-itn taint on the Node evacuates the rest of node-a and the Node stays cordoned', async () => {
    const high = workloads['early-high']!;
    const before = Date.now();
    kube.addTaint('node-a', {
      key: SPOT_ITN,
      value: 'spot-itn-e2e',
      effect: 'NoSchedule',
      timeAdded: new Date().toISOString(),
    });

    const raised = await evacuationOf('node-a', 'preemption');
    expect(raised).toMatchObject({ policy: 'evacuate', notice: { source: 'k8s' } });
    expect(new Date(raised.notice.receivedAt).getTime() - before).toBeLessThan(2_000);
    expect(await nodeState('node-a')).toBe('terminating');

    const done = await finished(raised.id);
    expect(done.state).toBe('completed');
    expect(done.jobs.map((j) => [j.workloadId, j.priority])).toEqual([[high.id, 9]]);
    await expectMoved(done, high, before);
    // Cordoned by the first evacuation already: this one finds it so, and patches nothing more.
    expect(await cordonOf(done.id)).toMatchObject({ kubeNode: 'node-a', outcome: 'already-cordoned' });
    expect(kube.node('node-a')!.spec.unschedulable).toBe(true);
    const patches = kube.requests.filter((r) => r.method === 'PATCH');
    expect(patches.map((p) => [p.path, p.headers['content-type'], JSON.parse(p.body) as unknown])).toEqual([
      ['/api/v1/nodes/node-a', 'application/strategic-merge-patch+json', { spec: { unschedulable: true } }],
    ]);
    expect(patches[0]!.headers.authorization).toBe(`Bearer ${KUBE_TOKEN}`);
  });

  it('watches a node registered by POST /nodes with a metadata source, without a restart', async () => {
    const spec = lab.nodes.find((n) => n.id === 'node-c')!;
    expect(imds.tokensIssued).toBe(0);
    const res = await orch.api<NodeRecord>('POST', '/nodes', {
      ...spec,
      metadata: { provider: 'aws', baseUrl: imds.url },
    });
    expect(res.status).toBe(201);
    expect(res.body.metadata).toEqual({ provider: 'aws', baseUrl: imds.url });
    // Its watcher polls the fake IMDS by curl on node-c over SSH (a token first, as IMDSv2 requires).
    await until('node-c polled', () => Promise.resolve(imds.tokensIssued >= 1 ? true : undefined), 15_000);

    const deadline = new Date(Date.now() + 120_000);
    imds.setSpotInterruption({ action: 'terminate', time: deadline });
    const raised = await evacuationOf('node-c', 'preemption');
    expect(raised).toMatchObject({ policy: 'evacuate', notice: { source: 'aws', action: 'terminate' } });
    expect(await nodeState('node-c')).toBe('terminating');
    const done = await finished(raised.id);
    expect(done.jobs).toEqual([]);
    expect(await cordonOf(raised.id)).toMatchObject({ kubeNode: 'node-c', outcome: 'cordoned' });
    expect(kube.node('node-c')!.spec.unschedulable).toBe(true);
  });
});
