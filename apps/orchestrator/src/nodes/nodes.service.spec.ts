/**
 * The nodes service with in-memory repositories and a prober that answers from a script: what a failed
 * registration stores (nothing), what probes may change (reachability, never a notice state), how a spurious
 * notice is cleared, and when a node may be removed. The HTTP side, against real sshd: test/hostile-peers.e2e-spec.ts.
 */
import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import {
  HostKeyMismatchError,
  NodeUnreachableError,
  type CheckpointRecord,
  type EvacuationRecord,
  type MigrationRecord,
  type NodeProbe,
  type NodeRecord,
  type NodeTarget,
  type WorkloadRecord,
} from '@spotlift/domain';
import { NodeProber, SystemClock } from '@spotlift/engine';
import { InMemoryEvacuationRecords, InMemoryRecords } from '@spotlift/store';
import { aMigration, aNode, aWorkload } from '@spotlift/testing';
import type { NodeSpec } from '../config/app-config.js';
import { NodeEvents } from './node-events.js';
import { NodeRegistrationError, NodesService } from './nodes.service.js';

/** Answers probes from a table: a probe result, or the error the shell would have thrown. */
class ScriptedProber extends NodeProber {
  readonly answers = new Map<string, NodeProbe | Error>();
  /** When set, probes wait for it (a slow SSH round trip, during which other writers act). */
  hold?: Promise<void>;
  /** Probes under way, for a test to know one has started. */
  started = 0;
  constructor() {
    super(undefined as never, new SystemClock(), '/unused');
  }
  override async probe(node: NodeTarget): Promise<NodeProbe> {
    this.started += 1;
    if (this.hold) await this.hold;
    const a = this.answers.get(node.host);
    if (!a) throw new Error(`no scripted answer for ${node.host}`);
    if (a instanceof Error) throw a;
    return a;
  }
}

const GOOD: NodeProbe = { probedAt: '2026-01-01T00:00:00.000Z', criuOk: true, criuVersion: '4.2.1', features: {} };
const spec = (over: Partial<NodeSpec> = {}): NodeSpec => ({
  id: 'node-x',
  host: '10.0.0.9',
  port: 22,
  user: 'root',
  hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
  lifecycle: 'spot',
  labels: {},
  ...over,
});

function world() {
  // Versioned, as in the app (core.module.ts): the race specs below depend on it.
  const nodes = new InMemoryRecords<NodeRecord>({ versioned: true });
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const evacuations = new InMemoryEvacuationRecords();
  const prober = new ScriptedProber();
  const events = new NodeEvents();
  const registered: string[] = [];
  const removed: string[] = [];
  events.onRegistered((n) => registered.push(n.id));
  events.onRemoved((id) => removed.push(id));
  const service = new NodesService(
    nodes,
    prober,
    new SystemClock(),
    events,
    workloads,
    migrations,
    checkpoints,
    evacuations,
  );
  return { service, nodes, workloads, migrations, checkpoints, evacuations, prober, registered, removed };
}

const warnings: unknown[] = [];
beforeEach(() => {
  warnings.length = 0;
  jest.spyOn(Logger.prototype, 'warn').mockImplementation((m: unknown) => void warnings.push(m));
  jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
});
afterEach(() => jest.restoreAllMocks());

describe('NodesService.register', () => {
  it('stores a reachable node as ready with its probe', async () => {
    const w = world();
    w.prober.answers.set('10.0.0.9', GOOD);
    const node = await w.service.register(spec());
    expect(node).toMatchObject({ id: 'node-x', state: 'ready', probe: { criuVersion: '4.2.1' } });
    expect(await w.nodes.get('node-x')).toMatchObject({ state: 'ready' });
    expect(w.registered).toEqual(['node-x']);
  });

  it.each([
    ['a refused port', new NodeUnreachableError('node-x', 'connect ECONNREFUSED 10.0.0.9:22')],
    ['a peer that hung up', new NodeUnreachableError('node-x', 'Connection lost before handshake')],
    ['another host key', new HostKeyMismatchError('node-x', 'SHA256:presentedpresentedpresentedpresentedpre')],
  ])('a failed first registration (%s) stores nothing and tells the caller only a log id', async (_l, error) => {
    const w = world();
    w.prober.answers.set('10.0.0.9', error);
    const failure = await w.service.register(spec()).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(NodeRegistrationError);
    const { message, meta } = failure as NodeRegistrationError;
    expect(message).toMatch(
      /^node 'node-x' could not be reached over SSH \(see the orchestrator log, id [0-9a-f]{12}\)$/,
    );
    expect(message).not.toMatch(/ECONNREFUSED|handshake|SHA256|host key/);
    expect(await w.nodes.get('node-x')).toBeUndefined();
    expect(w.registered).toEqual([]);
    // The detail is in the log, under the id the caller got.
    expect(warnings).toContainEqual(expect.objectContaining({ errorId: meta.errorId, detail: error.message }));
  });

  it('a failed re-registration keeps the existing record as it was', async () => {
    const w = world();
    const before = aNode('node-x', { host: '10.0.0.9', state: 'ready' });
    await w.nodes.save(before);
    w.prober.answers.set('10.0.0.10', new NodeUnreachableError('node-x', 'connect ECONNREFUSED 10.0.0.10:22'));
    await expect(w.service.register(spec({ host: '10.0.0.10' }))).rejects.toBeInstanceOf(NodeRegistrationError);
    expect(await w.nodes.get('node-x')).toEqual(before);
  });

  it('the config file at boot keeps an unreachable new node, as unreachable, so it can be probed later', async () => {
    const w = world();
    w.prober.answers.set('10.0.0.9', new NodeUnreachableError('node-x', 'connect ECONNREFUSED 10.0.0.9:22'));
    const node = await w.service.register(spec(), { keepUnreachable: true });
    expect(node.state).toBe('unreachable');
    expect((await w.nodes.get('node-x'))?.probe?.error).toMatch(/ECONNREFUSED/);
  });

  it.each(['draining', 'terminating'] as const)('re-registering a %s node keeps the state', async (state) => {
    const w = world();
    await w.nodes.save(aNode('node-x', { host: '10.0.0.9', state }));
    w.prober.answers.set('10.0.0.9', GOOD);
    expect((await w.service.register(spec())).state).toBe(state);
    expect((await w.nodes.get('node-x'))?.state).toBe(state);
  });
});

describe('NodesService.probe: reachability apart from the notice state', () => {
  it('a ready node that fails a probe is unreachable, and ready again after a good one', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { host: '10.0.0.9' }));
    w.prober.answers.set('10.0.0.9', new NodeUnreachableError('node-x', 'Keepalive timeout'));
    expect(await w.service.probe('node-x')).toMatchObject({ state: 'unreachable', probe: { error: /Keepalive/ } });
    w.prober.answers.set('10.0.0.9', GOOD);
    expect((await w.service.probe('node-x')).state).toBe('ready');
  });

  it.each(['draining', 'terminating'] as const)(
    'a %s node stays so through a failed probe and a good one after it',
    async (state) => {
      const w = world();
      await w.nodes.save(aNode('node-x', { host: '10.0.0.9', state }));
      w.prober.answers.set('10.0.0.9', new NodeUnreachableError('node-x', 'Keepalive timeout'));
      const failed = await w.service.probe('node-x');
      expect(failed.state).toBe(state);
      expect(failed.probe?.error).toMatch(/Keepalive timeout/);
      w.prober.answers.set('10.0.0.9', GOOD);
      expect((await w.service.probe('node-x')).state).toBe(state);
      expect((await w.nodes.get('node-x'))?.state).toBe(state);
    },
  );
});

describe('NodesService: a notice that lands while a probe runs', () => {
  /** Starts `act`, lets a notice mark the node terminating while its probe is held, then lets the probe end. */
  async function raceWithNotice(w: ReturnType<typeof world>, act: () => Promise<NodeRecord>): Promise<NodeRecord> {
    let release!: () => void;
    w.prober.hold = new Promise<void>((r) => (release = r));
    const pending = act();
    while (w.prober.started === 0) await Promise.resolve();
    // What EvacuationsService.markNode does (its own versioned update).
    await w.nodes.update('node-x', (n) => void (n.state = 'terminating'));
    release();
    return pending;
  }

  it('probe: the node ends terminating with the new probe (neither write lost)', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { host: '10.0.0.9', state: 'unreachable' }));
    w.prober.answers.set('10.0.0.9', { ...GOOD, memAvailableBytes: 7 });
    const node = await raceWithNotice(w, () => w.service.probe('node-x'));
    expect(node).toMatchObject({ state: 'terminating', probe: { memAvailableBytes: 7 } });
    expect(await w.nodes.get('node-x')).toMatchObject({ state: 'terminating', probe: { memAvailableBytes: 7 } });
  });

  it('re-registration: the node ends terminating with the new spec and probe', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { host: '10.0.0.9' }));
    w.prober.answers.set('10.0.0.9', { ...GOOD, memAvailableBytes: 9 });
    const node = await raceWithNotice(w, () => w.service.register(spec({ labels: { zone: 'b' } })));
    expect(node).toMatchObject({ state: 'terminating', labels: { zone: 'b' }, probe: { memAvailableBytes: 9 } });
    expect(await w.nodes.get('node-x')).toMatchObject({ state: 'terminating', labels: { zone: 'b' } });
  });
});

describe('NodesService.clearNotice', () => {
  const evacuation = (state: EvacuationRecord['state']) =>
    ({ id: 'evac-node-x-termination-1', nodeId: 'node-x', state }) as EvacuationRecord;

  it('makes a terminating node ready when no evacuation of it is in flight', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { state: 'terminating' }));
    await w.evacuations.save(evacuation('completed'));
    expect((await w.service.clearNotice('node-x')).state).toBe('ready');
    expect((await w.nodes.get('node-x'))?.state).toBe('ready');
  });

  it('refuses with 409 while an evacuation of the node is in flight, and changes nothing', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { state: 'draining' }));
    await w.evacuations.save(evacuation('running'));
    await expect(w.service.clearNotice('node-x')).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/evacuation 'evac-node-x-termination-1' in flight/) as unknown,
    });
    expect((await w.nodes.get('node-x'))?.state).toBe('draining');
  });

  it('leaves a node without a notice state alone, and 404s an unknown one', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x', { state: 'unreachable' }));
    expect((await w.service.clearNotice('node-x')).state).toBe('unreachable');
    await expect(w.service.clearNotice('node-zz')).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('NodesService.drain / undrain', () => {
  const evacuation = (state: EvacuationRecord['state'], createdAt = '2026-01-01T00:00:00.000Z') =>
    ({ id: 'evac-node-x-rebalance-1', nodeId: 'node-x', state, createdAt }) as EvacuationRecord;

  it('drain makes a ready node draining (placement and preflight refuse it), undrain makes it ready again', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    const drained = await w.service.drain('node-x');
    expect(drained.state).toBe('draining');
    expect(drained.drain?.at).toEqual(expect.any(String));
    expect(await w.nodes.get('node-x')).toMatchObject({ state: 'draining', drain: { at: drained.drain!.at } });
    const back = await w.service.undrain('node-x');
    expect(back.state).toBe('ready');
    expect(back.drain).toBeUndefined();
    expect((await w.nodes.get('node-x'))?.state).toBe('ready');
  });

  it('a drain survives probes, re-registration and a spurious notice being cleared; only undrain lifts it', async () => {
    const w = world();
    w.prober.answers.set('10.0.0.9', GOOD);
    await w.service.register(spec());
    await w.service.drain('node-x');
    await w.service.probe('node-x');
    await w.service.register(spec({ zone: 'z2' }));
    const n = await w.nodes.get('node-x');
    expect(n).toMatchObject({ state: 'draining', zone: 'z2', drain: { at: expect.any(String) as unknown } });
    await w.nodes.save({ ...n!, state: 'terminating' }); // a notice arrives, then is found spurious
    expect((await w.service.clearNotice('node-x')).state).toBe('draining');
    expect((await w.service.undrain('node-x')).state).toBe('ready');
  });

  it('undrain leaves a state a notice holds: a terminating node, or an early signal raised after the drain', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    const { drain } = await w.service.drain('node-x');
    await w.evacuations.save(evacuation('completed', new Date(Date.parse(drain!.at) + 1).toISOString()));
    const held = await w.service.undrain('node-x');
    expect(held.state).toBe('draining');
    expect(held.drain).toBeUndefined();

    await w.nodes.save(aNode('node-y', { state: 'terminating' }));
    expect((await w.service.drain('node-y')).drain).toBeUndefined(); // a notice holds it: no operator mark
    expect((await w.service.undrain('node-y')).state).toBe('terminating');
  });

  it('undrain of a node whose last probe failed makes it unreachable, not ready', async () => {
    const w = world();
    await w.nodes.save(
      aNode('node-x', { state: 'unreachable', probe: { probedAt: 'x', criuOk: false, features: {}, error: 'down' } }),
    );
    expect((await w.service.drain('node-x')).state).toBe('draining');
    expect((await w.service.undrain('node-x')).state).toBe('unreachable');
  });

  it('both refuse with 409 while an evacuation of the node is in flight, and change nothing; 404 unknown', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    await w.evacuations.save(evacuation('running'));
    for (const call of [() => w.service.drain('node-x'), () => w.service.undrain('node-x')]) {
      await expect(call()).rejects.toMatchObject({
        code: 'conflict',
        message: expect.stringMatching(/evacuation 'evac-node-x-rebalance-1' is in flight/) as unknown,
      });
    }
    expect(await w.nodes.get('node-x')).toMatchObject({ state: 'ready' });
    expect((await w.nodes.get('node-x'))?.drain).toBeUndefined();
    await expect(w.service.drain('node-zz')).rejects.toMatchObject({ code: 'not_found' });
    await expect(w.service.undrain('node-zz')).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('NodesService.remove', () => {
  it('removes a node nothing refers to (finished migrations and gone workloads do not count)', async () => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    await w.workloads.save(aWorkload({ nodeId: 'node-x', state: 'gone' }));
    await w.migrations.save(aMigration({ destinationNodeId: 'node-x', state: 'completed' }));
    await w.service.remove('node-x');
    expect(await w.nodes.get('node-x')).toBeUndefined();
    // this process's notice watchers hear of it at once
    expect(w.removed).toEqual(['node-x']);
  });

  it.each([
    [
      'a workload on it',
      (w: ReturnType<typeof world>) => w.workloads.save(aWorkload({ nodeId: 'node-x' })),
      /workload wl-1/,
    ],
    [
      'a running migration to it',
      (w: ReturnType<typeof world>) => w.migrations.save(aMigration({ destinationNodeId: 'node-x', state: 'running' })),
      /migration mig-1/,
    ],
    [
      'a queued migration from it',
      (w: ReturnType<typeof world>) => w.migrations.save(aMigration({ sourceNodeId: 'node-x', state: 'queued' })),
      /migration mig-1/,
    ],
    [
      'a stored checkpoint on it',
      (w: ReturnType<typeof world>) =>
        w.checkpoints.save({
          id: 'cp-1',
          sourceNodeId: 'node-a',
          storageNodeId: 'node-x',
          state: 'stored',
        } as CheckpointRecord),
      /checkpoint cp-1/,
    ],
    [
      'a checkpoint being taken from it',
      (w: ReturnType<typeof world>) =>
        w.checkpoints.save({
          id: 'cp-2',
          sourceNodeId: 'node-x',
          storageNodeId: 'node-s',
          state: 'taking',
        } as CheckpointRecord),
      /checkpoint cp-2/,
    ],
  ])('refuses with 409 while %s', async (_label, arrange, what) => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    await arrange(w);
    await expect(w.service.remove('node-x')).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(what) as unknown,
    });
    expect(await w.nodes.get('node-x')).toBeDefined();
    expect(w.removed).toEqual([]);
  });

  it('404s an unknown node', async () => {
    await expect(world().service.remove('node-zz')).rejects.toMatchObject({ code: 'not_found' });
  });
});

describe('NodesService.confirmLost', () => {
  it("records Kubernetes' word with its source, and the first word stands", async () => {
    const w = world();
    await w.nodes.save(aNode('node-x'));
    const reason = 'Node spot-x deleted from the cluster';
    const saved = await w.service.confirmLost('node-x', 'k8s https://kube', reason, 'kubernetes');
    expect(saved.lost).toEqual({ source: 'kubernetes', at: expect.any(String), by: 'k8s https://kube', reason });
    // An operator's later word (or another replica's watch) does not overwrite the first.
    await w.service.confirmLost('node-x', 'oncall', 'gone');
    expect((await w.nodes.get('node-x'))?.lost).toMatchObject({ source: 'kubernetes', reason });
  });

  it('refuses an unknown node with 404 and records nothing', async () => {
    const w = world();
    await expect(w.service.confirmLost('node-y', 'k8s', 'x', 'kubernetes')).rejects.toMatchObject({
      code: 'not_found',
    });
    expect(await w.nodes.get('node-y')).toBeUndefined();
  });
});
