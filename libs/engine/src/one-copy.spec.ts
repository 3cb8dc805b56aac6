/**
 * Only the job that froze a tree may resume it (issue 9): a job whose claim another job holds, whose
 * node-side lock another session holds, or whose dump CRIU refused because another tracer held the tree,
 * never freezes and never sends SIGCONT. Rollback and commit keep their own guards: a destination where CRIU
 * is still busy keeps the source frozen, and a commit whose source kill failed never rolls back. Over the fake
 * node operations (fakeEngineKit): the node-side lock is holdLock's answer (its script: node-lock.spec).
 */
import { readFileSync } from 'node:fs';
import { aMigration, aWorkload, type FakeProcessOps, fakeNodeLock } from '@spotlift/testing';
import { aPhase, fakeEngineKit, scriptHappyOps } from '@spotlift/testing';
import { MigrationInterrupted } from './run-control.js';

/** The engine over the fake; `script`'s rules answer first, then the happy path's. */
function engineKit(opts: Parameters<typeof fakeEngineKit>[0] = {}, script?: (ops: FakeProcessOps) => unknown) {
  const kit = fakeEngineKit(opts);
  script?.(kit.ops);
  scriptHappyOps(kit.ops, kit.streams);
  /** The operations of `names` that ran on `node`. */
  const did = (node: string, ...names: string[]) =>
    kit.ops.calls.filter((c) => c.node === node && names.includes(c.op)).map((c) => c.op);
  return { ...kit, did };
}
/** A CRIU command that exited 1 (the dump's: after the freeze). */
const criuFailed = { code: 1, stdout: '', stderr: '', startNs: 1n, endNs: 2n };
const failedDump = (ops: FakeProcessOps) => ops.on('dump', criuFailed, { node: 'node-a' });
/** The restore on node-b fails, armed or not; `first` runs when it does. */
const failedRestore = (ops: FakeProcessOps, first: () => void = () => undefined) =>
  ops
    .on(
      'armRestore',
      (n) => {
        const armed = ops.armed('armRestore', n.id, criuFailed);
        return { ...armed, fire: () => (first(), armed.fire()) };
      },
      { node: 'node-b' },
    )
    .on('restore', () => (first(), criuFailed), { node: 'node-b' });
/** Another session holds the node-side lock of the workload on node-a. */
const lockBusy = (ops: FakeProcessOps) => ops.on('holdLock', undefined, { node: 'node-a' });
const FREEZE_ON_A = ['dump', 'killTree', 'resumeTree'];

const seizeLog = (name: string) =>
  readFileSync(new URL(`../../criu/test/fixtures/logs/${name}`, import.meta.url), 'utf8');

describe('a job that did not freeze the tree never resumes it', () => {
  it.each(['dump-seize-concurrent-dump.log', 'dump-seize-strace.log'])(
    'a dump refused because another tracer holds the tree (%s, real CRIU log): failed, no SIGCONT, said why',
    async (log) => {
      const kit = engineKit({}, (ops) =>
        failedDump(ops).on('tail', seizeLog(log), {
          node: 'node-a',
          when: (_n, path, lines) => path.endsWith('/dump.log') && lines === 200,
        }),
      );
      const m = await kit.engine.run('mig-1', kit.control);
      expect(m.state).toBe('failed');
      expect(m.error).toMatch(/criu dump failed on node-a \(tree_held\): .*this command froze nothing/);
      expect(m.error).not.toMatch(/Nothing was frozen; check whether/);
      expect(m.rollbackReason).toBeUndefined();
      // Marked migrating for the dump, back to running on the stored record: nothing was frozen.
      expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
      expect(kit.did('node-a', 'resumeTree', 'killTree')).toEqual([]);
      expect(kit.did('node-b', 'restore', 'armRestore.fire')).toEqual([]);
    },
  );

  it('a dump refused as tree_held whose process exited meanwhile (EPERM on an exiting task, seen in CI): gone, not held', async () => {
    const kit = engineKit({}, (ops) =>
      failedDump(ops)
        .on('tail', seizeLog('dump-seize-concurrent-dump.log'), {
          node: 'node-a',
          when: (_n, path, lines) => path.endsWith('/dump.log') && lines === 200,
        })
        .on('processState', 'gone', { node: 'node-a' }),
    );
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /^workload gone: pid 4242 on node-a exited before the migration could move it; nothing was restored/,
    );
    expect(m.rollbackReason).toBeUndefined();
    expect((await kit.workloads.get('wl-1'))!.state).toBe('gone');
    expect(kit.did('node-a', 'resumeTree', 'killTree')).toEqual([]);
    expect(kit.did('node-b', 'restore', 'armRestore.fire')).toEqual([]);
  });

  it('a dump that failed with the tree frozen rolls back; the error is the failure, said once (no cancel)', async () => {
    const kit = engineKit({}, failedDump);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump failed on node-a/);
    expect(m.error).toBe(m.rollbackReason);
    expect(kit.did('node-a', 'resumeTree')).toHaveLength(1);
  });

  it('a recovered job whose only freeze phase is such a refused dump starts over instead of resuming the tree', async () => {
    const failedDump = {
      ...aPhase('dump', false),
      detail: 'criu dump failed on node-a (tree_held): The process to dump (pid 4242) is held by another tracer',
    };
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        phases: [aPhase('preflight', true), aPhase('prepare', true), failedDump],
      }),
      workload: aWorkload({ state: 'migrating' }),
    });
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('completed');
    // the restart's own dump froze it; nothing resumed a tree before that
    expect(kit.did('node-a', 'dump')).toHaveLength(1);
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
  });

  it('the claim held by another job: failed before prepare, no node-side command touches the workload', async () => {
    const kit = engineKit({ migration: aMigration({ claimKey: 'proc:boot:ns:4242:99' }) });
    const asked: string[] = [];
    const control = {
      ...kit.control,
      claimWorkload: (key: string) => (asked.push(key), Promise.resolve('migration:mig-other')),
    };
    const m = await kit.engine.run('mig-1', control);
    expect(asked).toEqual(['proc:boot:ns:4242:99']);
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      "workload 'wl-1' is claimed by migration:mig-other (process proc:boot:ns:4242:99); this job did not touch it",
    );
    expect(kit.did('node-a', 'holdLock', ...FREEZE_ON_A)).toEqual([]);
    expect(kit.did('node-b', 'startPageServer')).toEqual([]);
  });

  it('the node-side lock held by another session: failed before any page-server or dump, no SIGCONT', async () => {
    const kit = engineKit({}, lockBusy);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /another session holds the node-side lock of workload 'wl-1' on node-a \(node:node-a:pid:4242\)/,
    );
    expect(kit.ops.argsOf('holdLock', 'node-a').map(([key]) => key)).toEqual(['node:node-a:pid:4242']);
    expect(kit.did('node-a', ...FREEZE_ON_A)).toEqual([]);
    expect(kit.did('node-b', 'startPageServer')).toEqual([]);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
  });

  it("a job run again after its worker stopped before the freeze waits out a held lock (the dead worker's lease): retried, not failed", async () => {
    const kit = engineKit(
      {
        migration: aMigration({ state: 'running', phases: [aPhase('preflight', true), aPhase('prepare')] }),
        workload: aWorkload({ state: 'running' }),
      },
      lockBusy,
    );
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: false });
    expect((error as Error).message).toMatch(/the previous attempt's, until its lease ends/);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
    expect(kit.did('node-a', ...FREEZE_ON_A)).toEqual([]);
    expect(kit.did('node-b', 'startPageServer')).toEqual([]);
  });

  it('recovery of a possibly frozen job waits while another session holds the lock: nothing decided, no SIGCONT', async () => {
    const kit = engineKit(
      {
        migration: aMigration({
          state: 'running',
          phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump')],
        }),
        workload: aWorkload({ state: 'migrating' }),
      },
      lockBusy,
    );
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: true });
    expect((error as Error).message).toMatch(/node-side lock of this workload on node-a is held by another session/);
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-b', 'killTree', 'resumeTree')).toEqual([]);
  });
});

describe('rollback and commit keep the one copy', () => {
  it('a failed restore whose CRIU is still busy on the destination keeps the source frozen (no SIGCONT)', async () => {
    const kit = engineKit({}, (ops) =>
      failedRestore(ops).on('waitCriuIdle', { idle: false, pids: [31337] }, { node: 'node-b' }),
    );
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('criu is still running on node-b (pids 31337); the source stays frozen');
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
  });

  it('a commit whose source kill fails never rolls back: the verified destination stays, a cancel is answered "committed"', async () => {
    const kit = engineKit({}, (ops) => ops.on('killTree', 'T', { node: 'node-a' }));
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('the frozen source pid 4242 on node-a did not die (state T)');
    expect(kit.did('node-b', 'killTree')).toEqual([]);
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.state).toBe('running');
    expect(m.phases.map((p) => p.name)).not.toContain('rollback');
    expect(await kit.flags.requestCancel('mig-1')).toBe('committed');
  });
});

/**
 * A stale copy of a migration run again (issue 9, test/worker-hosts.e2e-spec.ts): a worker's journal wrote back
 * an unfinished copy after Redis came back empty, while another worker had finished the migration. Whatever
 * the stale record says, the run decides from the workload record and the nodes, and touches nothing that is
 * no longer this job's.
 */
describe('a stale copy of a migration run again', () => {
  const RESTORED = '2026-12-06T22:00:00.000Z';
  /** The copy as the stale host last saw it: restored on node-b (pid 777), not yet verified. */
  const staleUpToRestore = () =>
    aMigration({
      state: 'running',
      restoredPid: 777,
      restoredFromJournal: RESTORED,
      phases: ['preflight', 'prepare', 'dump', 'transfer', 'restore']
        .map((n) => aPhase(n as 'dump', true))
        .concat(aPhase('verify')),
    });

  it('brought back from a journal with nothing frozen: never started over; failed, the workload untouched', async () => {
    const kit = engineKit({
      migration: aMigration({ state: 'running', restoredFromJournal: RESTORED, phases: [aPhase('preflight', true)] }),
    });
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/brought back from a worker's journal after Redis lost it .* not started again/);
    expect(kit.did('node-a', 'dump', 'preDump', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-b', 'startPageServer', 'restore', 'armRestore.fire', 'killTree', 'resumeTree')).toEqual([]);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('... unless a run still driving it holds the node-side lock: then it waits (retried), nothing decided', async () => {
    const kit = engineKit(
      {
        migration: aMigration({ state: 'running', restoredFromJournal: RESTORED, phases: [aPhase('preflight', true)] }),
      },
      lockBusy,
    );
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: false });
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
  });

  it('the workload record names the copy another worker committed on node-b: the rollback kills and resumes nothing', async () => {
    const kit = engineKit({
      migration: staleUpToRestore(),
      workload: aWorkload({ nodeId: 'node-b', pid: 777, state: 'running' }),
    });
    // no restored.pid left on node-b (the happy path's readPidfile: the other worker cleaned up): recovery rolls back
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      "the workload record names pid 777 on 'node-b', not pid 777 on the source 'node-a' this job started from: the workload moved elsewhere, so this job rolls nothing back (no kill, no resume); nothing was touched",
    );
    expect(kit.did('node-b', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect(m.phases.map((p) => p.name)).not.toContain('rollback');
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
  });

  it("the end state the other run wrote meanwhile stays the migration's outcome (not overwritten by 'failed')", async () => {
    const kit = engineKit(
      {
        migration: staleUpToRestore(),
        workload: aWorkload({ nodeId: 'node-b', pid: 777, state: 'running' }),
      },
      (ops) =>
        ops.on(
          'waitCriuIdle',
          () => {
            void kit.migrations.update('mig-1', (m) => {
              m.state = 'completed';
              m.notes = ['by the other worker'];
            });
            return { idle: true, pids: [] };
          },
          { node: 'node-b' },
        ),
    );
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m).toMatchObject({ state: 'completed', notes: ['by the other worker'] });
    expect(await kit.migrations.get('mig-1')).toMatchObject({ state: 'completed', notes: ['by the other worker'] });
    expect(kit.did('node-b', 'killTree', 'resumeTree')).toEqual([]);
  });

  it('the record moved by another worker while this run was under way (read afresh): the rollback touches nothing', async () => {
    const kit = engineKit({}, (ops) =>
      failedRestore(ops, () => {
        // another worker moved the workload meanwhile (its record now names node-c)
        void kit.workloads.update('wl-1', (w) => {
          w.nodeId = 'node-c';
          w.pid = 9;
        });
      }),
    );
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/names pid 9 on 'node-c', not pid 4242 on the source 'node-a'.*rolls nothing back/);
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
  });

  it('the process key no longer matches the one the job claimed (another process at that pid): nothing resumed', async () => {
    const identity = { bootId: 'boot', pidNs: 'ns', startTime: '99' };
    const kit = engineKit({
      migration: { ...staleUpToRestore(), restoredPid: undefined, claimKey: 'proc:boot:ns:4242:99' },
      workload: aWorkload({ identity: { ...identity, startTime: '123' } }),
    });
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/names another process \(proc:boot:ns:4242:123\) than the one this job claimed/);
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
  });

  it('a stale commit whose workload moved on to node-c: kills nothing on the source, failed with why', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        restoredPid: 777,
        phases: [aPhase('verify', true), aPhase('commit')],
      }),
      workload: aWorkload({ nodeId: 'node-c', pid: 4242, state: 'running' }),
    });
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /names pid 4242 on 'node-c'.* so this job kills nothing \(pid 4242 on node-a is not killed\)/,
    );
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-b', 'killTree', 'resumeTree')).toEqual([]);
  });
});

describe("the node-side lock's lease found lost", () => {
  it('before the freeze (renewed right before the dump): the job stops without freezing and is retried', async () => {
    // the lease's holder ended: the renewal finds it gone
    const kit = engineKit({}, (ops) =>
      ops.on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`, { renewal: 'lost' })),
    );
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: false });
    expect((error as Error).message).toMatch(/lease on node-a was lost before 'dump'/);
    expect(kit.did('node-a', ...FREEZE_ON_A)).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
  });

  it('after the freeze: the job drives the migration to its end (one dump, completed), it does not stop half way', async () => {
    let frozen = false;
    // The lease is lost the moment the tree is frozen (its holder ended): every later phase boundary sees it.
    const kit = engineKit({}, (ops) =>
      ops
        .on(
          'dump',
          () => ((frozen = true), { ...criuFailed, code: 0, startNs: 1_000_000_000_000n, endNs: 1_001_000_000_000n }),
          {
            node: 'node-a',
          },
        )
        .on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`, { lost: () => frozen })),
    );
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('completed');
    expect(kit.did('node-a', 'dump')).toHaveLength(1);
  });
});
