/**
 * Raising evacuations: the node marked (terminating / draining), the early-signal scope recorded, and the
 * Kubernetes cordon tried in the background, recorded on the evacuation, never holding it up.
 */
import { Logger } from '@nestjs/common';
import type { NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { SystemClock } from '@spotlift/engine';
import { KubeApiError, KubeNodeApi, type KubeCordonResult, type Notice } from '@spotlift/notices';
import { InMemoryEvacuationRecords, InMemoryRecords } from '@spotlift/store';
import { aNode, aWorkload } from '@spotlift/testing';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { KubeCordoner, kubeNodeNames } from '../notices/kube-cordon.js';
import type { EvacuationQueue } from './evacuation-queue.js';
import { EvacuationsService } from './evacuations.service.js';

/** Cordons by name from a table; a name it does not know is a 404, like the API server. */
class ScriptedCordonApi extends KubeNodeApi {
  readonly cordoned: string[] = [];
  constructor(private readonly answers: Record<string, KubeCordonResult | Error | 'hang'>) {
    super();
  }
  listNodes(): never {
    throw new Error('not used');
  }
  watchNodes(): never {
    throw new Error('not used');
  }
  annotateNode(): Promise<void> {
    return Promise.reject(new Error('evacuations never annotate'));
  }
  cordonNode(name: string): Promise<KubeCordonResult> {
    this.cordoned.push(name);
    const a = this.answers[name];
    if (a === 'hang') return new Promise(() => undefined);
    if (a instanceof Error) return Promise.reject(a);
    return a ? Promise.resolve(a) : Promise.reject(new KubeApiError(`nodes "${name}" not found`, 404));
  }
}

function world(opts: {
  settings?: Partial<EvacuationSettings>;
  kube?: ScriptedCordonApi;
  workloads?: WorkloadRecord[];
}) {
  const evacuations = new InMemoryEvacuationRecords();
  const nodes = new InMemoryRecords<NodeRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  void nodes.save(aNode('node-a', { name: 'ip-10-0-0-1' }));
  for (const w of opts.workloads ?? []) void workloads.save(w);
  const enqueued: string[] = [];
  const nudged: string[] = [];
  const queue = {
    enqueue: (id: string) => Promise.resolve(void enqueued.push(id)),
    nudge: (id: string) => Promise.resolve(void nudged.push(id)),
  } as unknown as EvacuationQueue;
  const config = { evacuation: EvacuationSettings.parse(opts.settings ?? {}) } as AppConfig;
  const clock = new SystemClock();
  const service = new EvacuationsService(
    evacuations,
    nodes,
    queue,
    clock,
    config,
    workloads,
    new KubeCordoner(clock, opts.kube),
  );
  return { service, evacuations, nodes, enqueued, nudged };
}

function notice(kind: Notice['kind'], over: Partial<Notice> = {}): Notice {
  const now = Date.now();
  return {
    nodeId: 'node-a',
    source: 'aws',
    kind,
    deadline: new Date(now + 120_000),
    deadlineEstimated: false,
    receivedAt: new Date(now),
    dedupKey: `node-a:aws:${kind}`,
    reason: `${kind} notice`,
    raw: {},
    ...over,
  };
}

async function until<T>(fn: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 200; i++) {
    const v = await fn();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error('timed out');
}

const cordonOf = (w: ReturnType<typeof world>, id: string) => until(async () => (await w.evacuations.get(id))?.cordon);

beforeAll(() => {
  Logger.overrideLogger(false);
});

describe('EvacuationsService.raise: Kubernetes cordon', () => {
  it('marks the node terminating, queues the evacuation, and cordons the Node named like the node', async () => {
    const kube = new ScriptedCordonApi({ 'ip-10-0-0-1': { alreadyCordoned: false } });
    const w = world({ kube });
    const { evacuation, created } = await w.service.raise(notice('preemption'));
    expect(created).toBe(true);
    expect(w.enqueued).toEqual([evacuation.id]);
    expect((await w.nodes.get('node-a'))!.state).toBe('terminating');
    expect(await cordonOf(w, evacuation.id)).toMatchObject({ kubeNode: 'ip-10-0-0-1', outcome: 'cordoned' });
  });

  it('a notice from a Node taint cordons that Node; an already cordoned one is recorded as such', async () => {
    const kube = new ScriptedCordonApi({ 'worker-7': { alreadyCordoned: true } });
    const w = world({ kube });
    const { evacuation } = await w.service.raise(notice('termination', { source: 'k8s', raw: { name: 'worker-7' } }));
    expect(await cordonOf(w, evacuation.id)).toMatchObject({ kubeNode: 'worker-7', outcome: 'already-cordoned' });
    expect(kube.cordoned).toEqual(['worker-7']);
  });

  it('a failed cordon is recorded on the evacuation; the evacuation was queued regardless', async () => {
    const kube = new ScriptedCordonApi({ 'ip-10-0-0-1': new KubeApiError('cordon node ip-10-0-0-1: forbidden', 403) });
    const w = world({ kube });
    const { evacuation } = await w.service.raise(notice('preemption'));
    expect(w.enqueued).toEqual([evacuation.id]);
    expect(await cordonOf(w, evacuation.id)).toMatchObject({
      outcome: 'failed',
      error: 'cordon node ip-10-0-0-1: forbidden',
    });
  });

  it('a hanging Kubernetes API does not hold the evacuation up', async () => {
    const w = world({ kube: new ScriptedCordonApi({ 'ip-10-0-0-1': 'hang' }) });
    const { evacuation } = await w.service.raise(notice('preemption'));
    expect(w.enqueued).toEqual([evacuation.id]);
    expect((await w.evacuations.get(evacuation.id))!.cordon).toBeUndefined();
  });

  it('a node no Kubernetes Node is named after is not a Kubernetes node: said, nothing fails', async () => {
    const kube = new ScriptedCordonApi({});
    const w = world({ kube });
    const { evacuation } = await w.service.raise(notice('preemption'));
    expect(await cordonOf(w, evacuation.id)).toMatchObject({
      kubeNode: 'ip-10-0-0-1, node-a',
      outcome: 'not-a-kubernetes-node',
    });
  });

  it('recorded early signals cordon nothing; without a Kubernetes API nothing is tried', async () => {
    const kube = new ScriptedCordonApi({ 'ip-10-0-0-1': { alreadyCordoned: false } });
    const recorded = world({ kube });
    const { evacuation } = await recorded.service.raise(notice('rebalance'));
    expect(evacuation.policy).toBe('record');
    expect((await recorded.nodes.get('node-a'))!.state).toBe('ready');
    await new Promise((r) => setTimeout(r, 20));
    expect(kube.cordoned).toEqual([]);

    const none = world({});
    const raised = await none.service.raise(notice('preemption'));
    await new Promise((r) => setTimeout(r, 20));
    expect((await none.evacuations.get(raised.evacuation.id))!.cordon).toBeUndefined();
  });

  it('names to try: the notice’s Node first, then our name, then our id, without repeats', () => {
    expect(kubeNodeNames({ id: 'node-a', name: 'node-a' }, { source: 'aws', raw: {} })).toEqual(['node-a']);
    expect(kubeNodeNames({ id: 'node-a', name: 'ip-1' }, { source: 'k8s', raw: { name: 'worker-7' } })).toEqual([
      'worker-7',
      'ip-1',
      'node-a',
    ]);
  });
});

describe('EvacuationsService.raise: low-risk-first early signals', () => {
  const settings = { earlySignalPolicy: 'low-risk-first', lowRiskMaxPriority: 3 } as const;
  const workloads = [
    aWorkload({ id: 'wl-batch', priority: 2 }),
    aWorkload({ id: 'wl-db', priority: 9 }),
    aWorkload({ id: 'wl-elsewhere', nodeId: 'node-b', priority: 1 }),
  ];

  it('drains the node, records which workloads move and which stay, and queues the evacuation', async () => {
    const w = world({ settings, workloads });
    const { evacuation } = await w.service.raise(notice('rebalance'));
    expect(evacuation.policy).toBe('low-risk-first');
    expect((await w.nodes.get('node-a'))!.state).toBe('draining');
    expect(w.enqueued).toEqual([evacuation.id]);
    const stored = (await w.evacuations.get(evacuation.id))!;
    expect(stored.earlySignal!.workloads.map((x) => [x.workloadId, x.action])).toEqual([
      ['wl-batch', 'move'],
      ['wl-db', 'hold'],
    ]);
    expect(stored.events.map((e) => e.msg)).toContainEqual(expect.stringMatching(/^wl-db: .*pre-copy is unavailable/));
  });

  it('a termination notice afterwards raises a full evacuation and marks the node terminating', async () => {
    const w = world({ settings, workloads });
    const early = await w.service.raise(notice('rebalance'));
    const hard = await w.service.raise(notice('preemption'));
    expect(hard.created).toBe(true);
    expect(hard.evacuation.id).not.toBe(early.evacuation.id);
    expect(hard.evacuation).toMatchObject({ policy: 'evacuate' });
    expect(hard.evacuation.earlySignal).toBeUndefined();
    expect((await w.nodes.get('node-a'))!.state).toBe('terminating');
    // A second early signal while the first is open joins it.
    const again = await w.service.raise(notice('maintenance'));
    expect(again.created).toBe(false);
    expect(again.evacuation.id).toBe(hard.evacuation.id);
  });
});

describe('EvacuationsService.raise: deadlines of later notices', () => {
  it('a later notice with an earlier deadline moves the open evacuation’s deadline and records the change', async () => {
    const w = world({});
    const far = new Date(Date.now() + 60 * 86_400_000);
    const first = await w.service.raise(notice('preemption', { deadline: far, source: 'webhook' }));
    const soon = new Date(Date.now() + 120_000);
    const second = await w.service.raise(notice('preemption', { deadline: soon }));
    expect(second.created).toBe(false);
    const stored = (await w.evacuations.get(first.evacuation.id))!;
    expect(stored.deadline).toBe(soon.toISOString());
    expect(stored.deadlineChanges).toEqual([
      expect.objectContaining({ from: far.toISOString(), to: soon.toISOString(), source: 'aws', kind: 'preemption' }),
    ]);
    expect(w.enqueued).toEqual([first.evacuation.id]);
    // The coordinator running it is told (it learns from the queue's events, not by polling).
    expect(w.nudged).toEqual([first.evacuation.id]);
  });

  it('a later or equal deadline (within the tolerance) changes nothing', async () => {
    const w = world({});
    const d = new Date(Date.now() + 120_000);
    const first = await w.service.raise(notice('preemption', { deadline: d }));
    await w.service.raise(notice('preemption', { deadline: new Date(d.getTime() - 4_000) }));
    await w.service.raise(notice('preemption', { deadline: new Date(d.getTime() + 60_000) }));
    const stored = (await w.evacuations.get(first.evacuation.id))!;
    expect(stored.deadline).toBe(d.toISOString());
    expect(stored.deadlineChanges).toBeUndefined();
    expect(stored.otherNotices).toHaveLength(2);
    expect(w.nudged).toEqual([]);
  });

  it('an event already handled by a finished evacuation raises nothing new; an earlier deadline does', async () => {
    const w = world({});
    const d = new Date(Date.now() + 3_600_000);
    const first = await w.service.raise(notice('maintenance', { deadline: d }));
    expect((await w.evacuations.get(first.evacuation.id))!.state).toBe('completed'); // policy 'record'
    // The dedup claim expired (1 h at most) and the source still lists the same event.
    const again = await w.service.raise(notice('maintenance', { deadline: d }));
    expect(again).toMatchObject({ created: false, evacuation: { id: first.evacuation.id } });
    const sooner = await w.service.raise(notice('maintenance', { deadline: new Date(d.getTime() - 600_000) }));
    expect(sooner.created).toBe(true);
    expect(sooner.evacuation.id).not.toBe(first.evacuation.id);
  });
});

describe('EvacuationsService.evacuateNow: an operator empties a node by hand', () => {
  it('raises a termination evacuation with the given deadline and queues it; the node becomes terminating', async () => {
    const w = world({});
    const deadline = new Date(Date.now() + 300_000).toISOString();
    const { evacuation, created } = await w.service.evacuateNow({ node: 'node-a', deadline, reason: 'kernel update' });
    expect(created).toBe(true);
    expect(evacuation).toMatchObject({ nodeId: 'node-a', policy: 'evacuate', deadline });
    expect(evacuation.notice).toMatchObject({ kind: 'termination', action: 'manual' });
    expect(evacuation.notice.reason).toBe('manual evacuation: kernel update');
    expect(w.enqueued).toEqual([evacuation.id]);
    expect((await w.nodes.get('node-a'))!.state).toBe('terminating');
  });

  it('a second request joins the open evacuation and moves its deadline earlier, never a second evacuation', async () => {
    const w = world({});
    const first = await w.service.evacuateNow({ node: 'node-a', secondsUntil: 600 });
    const second = await w.service.evacuateNow({ node: 'node-a', secondsUntil: 60 });
    expect(second.created).toBe(false);
    expect(second.evacuation.id).toBe(first.evacuation.id);
    expect(Date.parse(second.evacuation.deadline)).toBeLessThan(Date.parse(first.evacuation.deadline) - 500_000);
    expect(w.enqueued).toEqual([first.evacuation.id]);
  });

  it('refuses a past or malformed deadline (400) and an unknown node (404), and raises nothing', async () => {
    const w = world({});
    await expect(
      w.service.evacuateNow({ node: 'node-a', deadline: new Date(Date.now() - 60_000).toISOString() }),
    ).rejects.toMatchObject({ code: 'bad_request' });
    await expect(w.service.evacuateNow({ node: 'node-a', deadline: 'tomorrow' })).rejects.toMatchObject({
      code: 'bad_request',
      message: expect.stringContaining('RFC 3339') as unknown,
    });
    await expect(w.service.evacuateNow({ node: 'node-zz', secondsUntil: 60 })).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await w.evacuations.list()).toEqual([]);
    expect((await w.nodes.get('node-a'))!.state).toBe('ready');
  });
});
