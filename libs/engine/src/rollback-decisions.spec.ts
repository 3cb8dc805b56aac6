/**
 * Rollback's decisions, one row per situation (issue 9: mutation testing found ~200 mutants of rollback.ts no
 * spec reached). Each row says which phases the failed job had started and what the nodes answer; the row
 * pins what rollback then does to which node and in which order, whether the source is resumed, what the
 * workload record says afterwards, and the words of a refusal. Driven on Rollback directly (the engine's
 * specs reach it only through whole migrations), over the fake node operations (FakeProcessOps): the nodes
 * answer waitCriuIdle, readPidfile, killTree and resumeTree by name. What those run on a node, and how their
 * answers are read, is the layer's own (node-commands.golden.spec.ts, node-ops.spec.ts).
 */
import type { MigrationRecord, PhaseName, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { FakeProcessOps, aMigration, aNode, aPhase, aWorkload, type FakeProcessCall } from '@spotlift/testing';
import { SystemClock } from './clock.js';
import { DEFAULT_ENGINE_CONFIG, type EngineConfig, type MigrationContext } from './engine.types.js';
import { PhaseRecorder } from './phase-recorder.js';
import { Rollback } from './rollback.js';

const SRC_DIR = '/img/mig-1/src';
const DST_DIR = '/img/mig-1/dst';

type Idle = 'idle' | 'busy' | 'down';
interface Nodes {
  /** waitCriuIdle on the destination: idle, CRIU pids 991 992 still there, or no answer at all. */
  dst?: Idle;
  /** waitCriuIdle on the source (sourceDir). */
  src?: Idle;
  /** What the destination's restored.pid holds. */
  pidfile?: number;
  /** The restored tree's state after the kill. */
  killed?: string;
  /** The source's state after SIGCONT. */
  resumed?: string;
}

const idleAnswer = (node: string, how: Idle) =>
  how === 'down'
    ? new Error(`connect ECONNREFUSED ${node}`)
    : how === 'busy'
      ? { idle: false, pids: [991, 992] }
      : { idle: true, pids: [] };

/** One operation as a short line: what was done, on which node, to what. */
function step(c: FakeProcessCall): string {
  const [a, b] = c.args as [unknown, unknown];
  if (c.op === 'waitCriuIdle') return `idle? ${c.node} ${String(a)} ${Number(b) / 1000}s`;
  if (c.op === 'readPidfile' && a === `${DST_DIR}/restored.pid`) return `pidfile ${c.node}`;
  if (c.op === 'killTree') return `kill ${c.node} ${String(a)}`;
  if (c.op === 'resumeTree') return `resume ${c.node} ${String(a)}`;
  return `other ${c.node}: ${c.op} ${JSON.stringify(c.args)}`;
}

async function rollBack(
  phases: PhaseName[],
  nodes: Nodes,
  over: {
    migration?: Partial<MigrationRecord>;
    config?: Partial<EngineConfig>;
    /** The stored workload record (another worker may have moved it); the job's own copy is unchanged. */
    stored?: Partial<WorkloadRecord>;
  } = {},
) {
  const ops = new FakeProcessOps()
    .on('waitCriuIdle', idleAnswer('node-b', nodes.dst ?? 'idle'), { node: 'node-b', when: (_n, d) => d === DST_DIR })
    .on('waitCriuIdle', idleAnswer('node-a', nodes.src ?? 'idle'), { node: 'node-a', when: (_n, d) => d === SRC_DIR })
    .on('readPidfile', nodes.pidfile, { node: 'node-b', when: (_n, path) => path === `${DST_DIR}/restored.pid` })
    .on('killTree', nodes.killed ?? 'gone', { node: 'node-b' })
    .on('resumeTree', nodes.resumed ?? 'S', { node: 'node-a' });
  const migration = aMigration({
    state: 'running',
    phases: phases.map((n) => aPhase(n, false)),
    ...over.migration,
  });
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  // Someone else renamed the workload meanwhile: rollback writes only its state over that.
  await workloads.save(aWorkload({ state: 'migrating', name: 'renamed-meanwhile', ...over.stored }));
  const workload = aWorkload({ state: 'migrating' });
  const ctx: MigrationContext = {
    migration,
    workload,
    source: aNode('node-a'),
    destination: aNode('node-b'),
    sourceDir: SRC_DIR,
    destinationDir: DST_DIR,
  };
  const config: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, criuIdleTimeoutMs: 42_000, ...over.config };
  const rollback = new Rollback(ops.asNodeOps(), new PhaseRecorder(migrations, new SystemClock()), workloads, config);
  let alive: boolean | undefined;
  let error: string | undefined;
  try {
    alive = await rollback.run(ctx);
  } catch (e) {
    error = (e as Error).message;
  }
  const phase = migration.phases.at(-1)!;
  return {
    alive,
    error,
    steps: ops.calls.map(step),
    stored: (await workloads.get('wl-1'))!,
    workload,
    migration,
    phase: { name: phase.name, ok: phase.ok, detail: phase.detail },
  };
}

const RESUMED = 'source pid 4242 on node-a resumed (state S)';

describe('rollback: what it resumes, kills and waits for, in which order', () => {
  type Row = [string, PhaseName[], Nodes, Partial<MigrationRecord>, string[], string];
  const rows: Row[] = [
    [
      'before the dump: a quick best-effort look at the destination, then the source is resumed',
      ['preflight', 'prepare'],
      {},
      {},
      [`idle? node-b ${DST_DIR} 1s`, 'resume node-a 4242'],
      RESUMED,
    ],
    [
      'no restore started and the destination does not answer: no copy can exist there, the source is resumed',
      ['preflight', 'prepare', 'dump', 'transfer'],
      { dst: 'down' },
      {},
      [`idle? node-b ${DST_DIR} 1s`, `idle? node-a ${SRC_DIR} 42s`, 'resume node-a 4242'],
      `node-b did not answer; ${RESUMED}`,
    ],
    [
      'no restore started and CRIU (a page-server) still busy on the destination: it holds no copy, resumed',
      ['preflight', 'prepare'],
      { dst: 'busy' },
      {},
      [`idle? node-b ${DST_DIR} 1s`, 'resume node-a 4242'],
      RESUMED,
    ],
    [
      'after the dump: the source dump is waited for (full timeout) before the SIGCONT',
      ['preflight', 'prepare', 'dump'],
      {},
      {},
      [`idle? node-b ${DST_DIR} 1s`, `idle? node-a ${SRC_DIR} 42s`, 'resume node-a 4242'],
      RESUMED,
    ],
    [
      'restore started, pid on the record: CRIU idle on the destination, the copy killed, then the source resumed',
      ['preflight', 'prepare', 'dump', 'transfer', 'restore'],
      {},
      { restoredPid: 777 },
      [`idle? node-b ${DST_DIR} 42s`, 'kill node-b 777', `idle? node-a ${SRC_DIR} 42s`, 'resume node-a 4242'],
      `restored pid 777 on node-b killed; ${RESUMED}`,
    ],
    [
      'restore started, no pid on the record: CRIU’s restored.pid names the copy to kill',
      ['preflight', 'prepare', 'dump', 'transfer', 'restore'],
      { pidfile: 778 },
      {},
      [
        `idle? node-b ${DST_DIR} 42s`,
        'pidfile node-b',
        'kill node-b 778',
        `idle? node-a ${SRC_DIR} 42s`,
        'resume node-a 4242',
      ],
      `restored pid 778 on node-b killed; ${RESUMED}`,
    ],
    [
      'restore started but no copy was ever created (no pid anywhere): nothing killed, the source resumed',
      ['preflight', 'prepare', 'dump', 'transfer', 'restore'],
      {},
      {},
      [`idle? node-b ${DST_DIR} 42s`, 'pidfile node-b', `idle? node-a ${SRC_DIR} 42s`, 'resume node-a 4242'],
      RESUMED,
    ],
    [
      'a restore phase without a dump phase (checkpoint restore): no wait on the source',
      ['restore'],
      {},
      { restoredPid: 777 },
      [`idle? node-b ${DST_DIR} 42s`, 'kill node-b 777', 'resume node-a 4242'],
      `restored pid 777 on node-b killed; ${RESUMED}`,
    ],
  ];

  it.each(rows)('%s', async (_what, phases, nodes, migration, steps, detail) => {
    const r = await rollBack(phases, nodes, { migration });
    expect(r.error).toBeUndefined();
    expect(r.steps).toEqual(steps);
    expect(r.alive).toBe(true);
    expect(r.phase).toEqual({ name: 'rollback', ok: true, detail });
    expect(r.workload.state).toBe('running');
    expect(r.stored).toMatchObject({ state: 'running', name: 'renamed-meanwhile' });
    expect(r.migration.restoredPid).toBeUndefined();
  });

  it('without criuIdleTimeoutMs the waits last 5 minutes', async () => {
    const r = await rollBack(['dump', 'restore'], {}, { config: { criuIdleTimeoutMs: undefined } });
    expect(r.steps).toEqual([
      `idle? node-b ${DST_DIR} 300s`,
      'pidfile node-b',
      `idle? node-a ${SRC_DIR} 300s`,
      'resume node-a 4242',
    ]);
  });
});

describe('rollback: when the source stays frozen (frozen beats running twice)', () => {
  type Row = [string, PhaseName[], Nodes, Partial<MigrationRecord>, string[], string];
  const rows: Row[] = [
    [
      'CRIU still busy on the destination after a restore started (it may still create the copy)',
      ['dump', 'transfer', 'restore'],
      { dst: 'busy' },
      { restoredPid: 777 },
      [`idle? node-b ${DST_DIR} 42s`],
      'criu is still running on node-b (pids 991 992); the source stays frozen',
    ],
    [
      'the destination does not answer after a restore started (a copy may run there)',
      ['dump', 'transfer', 'restore'],
      { dst: 'down' },
      {},
      [`idle? node-b ${DST_DIR} 42s`],
      'connect ECONNREFUSED node-b',
    ],
    [
      'the restored copy does not die (stopped)',
      ['dump', 'transfer', 'restore'],
      { killed: 'T' },
      { restoredPid: 777 },
      [`idle? node-b ${DST_DIR} 42s`, 'kill node-b 777'],
      'restored pid 777 on node-b did not die (state T); the source stays frozen',
    ],
    [
      'the restored copy’s state cannot be read after the kill',
      ['dump', 'transfer', 'restore'],
      { killed: 'unknown', pidfile: 778 },
      {},
      [`idle? node-b ${DST_DIR} 42s`, 'pidfile node-b', 'kill node-b 778'],
      'restored pid 778 on node-b did not die (state unknown); the source stays frozen',
    ],
    [
      'a dump still running on the source (its worker died): a SIGCONT would not stick',
      ['preflight', 'prepare', 'dump'],
      { src: 'busy' },
      {},
      [`idle? node-b ${DST_DIR} 1s`, `idle? node-a ${SRC_DIR} 42s`],
      'criu is still running on node-a (pids 991 992); not resuming under it',
    ],
    [
      'the source still stopped after SIGCONT (T)',
      ['preflight', 'prepare', 'dump'],
      { resumed: 'T' },
      {},
      [`idle? node-b ${DST_DIR} 1s`, `idle? node-a ${SRC_DIR} 42s`, 'resume node-a 4242'],
      'source pid 4242 on node-a is still stopped (state T) after SIGCONT',
    ],
    [
      'the source still stopped after SIGCONT (t, traced)',
      ['preflight', 'prepare'],
      { resumed: 't' },
      {},
      [`idle? node-b ${DST_DIR} 1s`, 'resume node-a 4242'],
      'source pid 4242 on node-a is still stopped (state t) after SIGCONT',
    ],
  ];

  it.each(rows)('%s', async (_what, phases, nodes, migration, steps, error) => {
    const r = await rollBack(phases, nodes, { migration });
    expect(r.error).toBe(error);
    expect(r.steps).toEqual(steps);
    expect(r.phase).toEqual({ name: 'rollback', ok: false, detail: error });
    // Nothing decided is written: the record still says migrating, and a retry checks again.
    expect(r.stored.state).toBe('migrating');
    expect(r.workload.state).toBe('migrating');
    expect(r.migration.restoredPid).toBe(migration.restoredPid);
  });
});

describe('rollback: a workload that exited', () => {
  it('gone after SIGCONT: returns false and records it gone, running nowhere', async () => {
    const r = await rollBack(['preflight', 'prepare', 'dump'], { resumed: 'gone' });
    expect(r.alive).toBe(false);
    expect(r.workload.state).toBe('gone');
    expect(r.stored).toMatchObject({ state: 'gone', name: 'renamed-meanwhile' });
    expect(r.phase).toEqual({
      name: 'rollback',
      ok: true,
      detail: 'the workload (pid 4242) is gone from node-a: it exited before or during the dump; it runs nowhere',
    });
  });

  it.each(['S', 'R', 'D'])('any live state after SIGCONT (%s) counts as resumed', async (state) => {
    const r = await rollBack(['preflight', 'prepare'], { resumed: state });
    expect(r.alive).toBe(true);
    expect(r.stored.state).toBe('running');
    expect(r.phase.detail).toBe(`source pid 4242 on node-a resumed (state ${state})`);
  });
});

describe('rollback: only while the stored workload record names the process this job started from', () => {
  const identity = (startTime: number) => ({ bootId: 'b', pidNs: 'ns', startTime: String(startTime) });
  const moved = (why: string) =>
    `${why}: the workload moved elsewhere, so this job rolls nothing back (no kill, no resume); nothing was touched`;
  type Row = [string, Partial<WorkloadRecord>, Partial<MigrationRecord>, string | undefined];
  const rows: Row[] = [
    [
      'moved to node-b by another worker (its restored copy, same pid): nothing killed, nothing resumed',
      { nodeId: 'node-b', pid: 4242 },
      { restoredPid: 4242 },
      moved(
        "the workload record names pid 4242 on 'node-b', not pid 4242 on the source 'node-a' this job started from",
      ),
    ],
    [
      'another pid on the source node',
      { pid: 5 },
      {},
      moved("the workload record names pid 5 on 'node-a', not pid 4242 on the source 'node-a' this job started from"),
    ],
    [
      'the same pid but another process than the one claimed (its start time)',
      { identity: identity(2) },
      { claimKey: 'proc:b:ns:4242:1' },
      moved(
        'the workload record names another process (proc:b:ns:4242:2) than the one this job claimed (proc:b:ns:4242:1)',
      ),
    ],
    [
      'the process the job claimed: rolled back',
      { identity: identity(1) },
      { claimKey: 'proc:b:ns:4242:1' },
      undefined,
    ],
    [
      'a claim made before the identity was known (node:...:pid:...): the node and pid decide, rolled back',
      { identity: identity(1) },
      { claimKey: 'node:node-a:pid:4242' },
      undefined,
    ],
  ];
  it.each(rows)('%s', async (_what, stored, migration, error) => {
    const r = await rollBack(
      ['preflight', 'prepare', 'dump', 'transfer', 'restore'],
      { pidfile: 777 },
      { stored, migration },
    );
    expect(r.error).toBe(error);
    if (error) {
      expect(r.steps).toEqual([]);
      expect(r.migration.phases.map((p) => p.name)).not.toContain('rollback');
      expect(r.stored).toMatchObject(stored);
    } else {
      expect(r.steps).toEqual([
        `idle? node-b ${DST_DIR} 42s`,
        ...(migration.restoredPid ? [] : ['pidfile node-b']),
        'kill node-b 777',
        `idle? node-a ${SRC_DIR} 42s`,
        'resume node-a 4242',
      ]);
    }
  });
});
