/**
 * Recovery and rollback under the "exactly one running copy" rule: the source is resumed only once the
 * destination provably runs no copy, CRIU commands a dead worker left running are waited for, and a node
 * that does not answer stops the engine (MigrationInterrupted, record still 'running') instead of guessing.
 * Over the fake node operations (fakeEngineKit): a node that does not answer is the fake's unreachable mode.
 */
import { NodeUnreachableError, type MigrationRecord } from '@spotlift/domain';
import { aMigration, aWorkload, type FakeProcessOps } from '@spotlift/testing';
import { aPhase, fakeEngineKit, phaseNames, scriptHappyOps } from '@spotlift/testing';
import { fileMtimeCommand, parseFileMtime } from './node-ops/node-scripts.js';
import { mayBeFrozen } from './recovery.js';
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
const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

const upTo = (...names: Parameters<typeof aPhase>[0][]) =>
  names.map((n, i) => aPhase(n, i < names.length - 1 ? true : undefined));
type Phase = Parameters<typeof aPhase>[0];
const running = (names: Phase[], script?: (ops: FakeProcessOps) => unknown) => runningWith({}, names, script);
const runningWith = (over: Partial<MigrationRecord>, names: Phase[], script?: (ops: FakeProcessOps) => unknown) =>
  engineKit(
    {
      migration: aMigration({ state: 'running', phases: upTo(...names), ...over }),
      workload: aWorkload({ state: 'migrating', tree: [4242, 4243] }),
    },
    script,
  );
const unreachable = (node: string) => new NodeUnreachableError(node, 'connect ECONNREFUSED');

describe('recovery of a job whose worker died', () => {
  it('during the dump: waits for the orphaned criu dump to end before resuming (a SIGCONT under it would not stick)', async () => {
    const kit = running(['preflight', 'prepare', 'dump']);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    const idle = kit.ops.calls.findIndex(
      (c) => c.node === 'node-a' && c.op === 'waitCriuIdle' && String(c.args[0]).endsWith('/mig-1/src'),
    );
    const resume = kit.ops.sequence().indexOf('resumeTree@node-a');
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThan(resume);
    expect(m.notes?.[0]).toMatch(/picked up again after the previous attempt stopped during 'dump'/);
  });

  it('during the dump with the destination unreachable: no restore ever started, so the source is resumed anyway', async () => {
    const kit = running(['preflight', 'prepare', 'dump', 'transfer'], (ops) => ops.unreachable('node-b'));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(kit.did('node-a', 'resumeTree')).toHaveLength(1);
    expect(m.phases.find((p) => p.name === 'rollback')!.detail).toMatch(
      /node-b did not answer; source pid 4242 on node-a resumed/,
    );
    // The image directory on node-b could not be removed: said plainly, not hidden.
    expect(m.phases.at(-1)).toMatchObject({
      name: 'cleanup',
      ok: false,
      detail: '/var/lib/spotlift/images/mig-1 could not be removed on node-b',
    });
  });

  // (The stats images' mtimes as GNU date and busybox stat print them: fileMtimeNs in node-ops.spec.)
  it('during the restore with the destination unreachable: the source stays frozen and the job is interrupted, then a retry adopts', async () => {
    const kit = running(['preflight', 'prepare', 'dump', 'transfer', 'restore'], (ops) =>
      ops
        .unreachable('node-b', { calls: 1 })
        .on('readPidfile', 777, { node: 'node-b', when: (_n, path) => path.endsWith('/restored.pid') }),
    );
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: true });
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');

    // node-b answers again: the restored tree verifies, the commit is finished.
    kit.ops
      .on('fileMtimeNs', 1_001_000_000_000n, { node: 'node-a', when: (_n, path) => path.endsWith('/stats-dump') })
      .on('fileMtimeNs', 1_001_300_000_000n, { node: 'node-b', when: (_n, path) => path.endsWith('/stats-restore') });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.statsProblem).toBeUndefined();
    // Downtime from the stats images' modification times (the dead worker's timestamps are lost) and CRIU's frozen time.
    expect(m.downtimeMs).toBeCloseTo(300 + (m.criu.dump!.frozenTimeUs + m.criu.dump!.freezingTimeUs) / 1000, 3);
    expect(kit.did('node-a', 'killTree')).toHaveLength(1);
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
  });

  it('during the restore while criu restore still runs there: neither adopts nor resumes', async () => {
    const kit = running(['preflight', 'prepare', 'dump', 'transfer', 'restore'], (ops) =>
      ops.on('waitCriuIdle', { idle: false, pids: [31337] }, { node: 'node-b' }),
    );
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toMatch(/criu is still running on node-b \(pids 31337\)/);
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-b', 'killTree')).toEqual([]);
  });

  it('during a rollback (even in its cleanup): rolls back again, never commits', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        rollbackReason: 'criu restore failed on node-b',
        phases: [
          aPhase('preflight', true),
          aPhase('prepare', true),
          aPhase('dump', true),
          aPhase('transfer', true),
          aPhase('restore', false),
          aPhase('rollback', true),
          aPhase('cleanup'),
        ],
      }),
    });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toBe('criu restore failed on node-b');
    expect(kit.did('node-a', 'killTree')).toEqual([]);
    expect(kit.did('node-a', 'resumeTree')).toHaveLength(1);
  });

  it('during the commit: finishes it (the destination was verified and the commit claimed)', async () => {
    const kit = runningWith({ restoredPid: 777 }, [
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
    ]);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(kit.did('node-a', 'killTree')).toHaveLength(1);
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
  });
});

describe('stats image modification times on GNU and busybox nodes', () => {
  it('asks GNU date first and falls back to stat, quoting the path', () => {
    expect(fileMtimeCommand("/img/it's/stats-dump")).toBe(
      `t=$(date -r '/img/it'\\''s/stats-dump' +%s%N 2>/dev/null); case "$t" in ''|*[!0-9]*) ` +
        `stat -c '%Y %y' '/img/it'\\''s/stats-dump' 2>/dev/null;; *) echo "$t";; esac; true`,
    );
  });

  it('reads GNU date ns and busybox/GNU stat seconds plus the fraction of the human time', () => {
    expect(parseFileMtime('1795832761101177757\n')).toBe(1795832761101177757n);
    expect(parseFileMtime('1795832760 2026-11-28 02:26:00.764000668 +0000\n')).toBe(1795832760764000668n);
    expect(parseFileMtime('1795832760 2026-11-28 02:26:00.7640 +0100')).toBe(1795832760764000000n);
    expect(parseFileMtime('1795832760 2026-11-28 02:26:00 +0000')).toBe(1795832760000000000n);
  });

  it('gives nothing for a missing file or busybox date output', () => {
    expect(parseFileMtime('')).toBeUndefined();
    expect(parseFileMtime('1795832760%N')).toBeUndefined();
    expect(parseFileMtime("stat: can't stat 'x': No such file or directory")).toBeUndefined();
  });
});

describe('rollback refuses to make a second copy', () => {
  it('keeps the source frozen when the restored tree on the destination does not die', async () => {
    // The restored tree is stopped (verify fails), and SIGKILL leaves it sleeping.
    const kit = engineKit({}, (ops) =>
      ops.on('processState', 'T', { node: 'node-b' }).on('killTree', 'S', { node: 'node-b' }),
    );
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('restored pid 777 on node-b did not die (state S); the source stays frozen');
    expect(kit.did('node-a', 'resumeTree')).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.state).toBe('running');
    expect(m.notes?.at(-1)).toMatch(/stopped without an end state: restored pid 777/);
  });

  it('a transient SSH error before any freeze interrupts (retry) instead of failing; the retry starts over', async () => {
    const kit = engineKit({}, (ops) => ops.on('inspectTree', unreachable('node-a'), { node: 'node-a', once: true }));
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: false });
    expect(kit.did('node-a', 'killTree', 'resumeTree', 'dump')).toEqual([]);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(phaseNames(m).slice(0, 2)).toEqual(['preflight:fail', 'preflight:ok']);
  });

  it('a failure before any freeze leaves the workload record as others wrote it (a tree found gone stays gone)', async () => {
    const kit = engineKit({}, (ops) =>
      ops.on(
        'inspectTree',
        // The tree exited (no such process); a refresh of the workload recorded that meanwhile.
        () => (void kit.workloads.save(aWorkload({ state: 'gone' })), undefined),
        { node: 'node-a' },
      ),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/no longer runs on node-a/);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('gone');
  });

  it('a lost job lock stops at the next boundary without touching nodes or the record', async () => {
    let lost = false;
    const kit = engineKit({}, (ops) =>
      ops.on('dump', () => ((lost = true), { ...said(), startNs: 1n, endNs: 2n }), { node: 'node-a', once: true }),
    );
    const control = { ...kit.control, lost: () => lost };
    const error = await kit.engine.run('mig-1', control).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: true });
    expect(kit.did('node-a', 'killTree', 'resumeTree')).toEqual([]);
    expect(kit.did('node-b', 'restore', 'armRestore.fire')).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.notes ?? []).toEqual([]);
  });

  it('a job lock lost before any freeze stops at the next boundary too: no end state, nothing more on the nodes', async () => {
    let lost = false;
    // The lease goes while 'prepare' starts the destination's page-server; 'dump' is the next boundary.
    const kit = engineKit({}, (ops) => ops.on('startPageServer', () => ((lost = true), said()), { node: 'node-b' }));
    const control = { ...kit.control, lost: () => lost };
    const error = await kit.engine.run('mig-1', control).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: false });
    expect(kit.did('node-b', 'startPageServer')).toHaveLength(1);
    // Not settled as a failure by this worker: no page-server stopped, no workload or record written.
    expect(kit.did('node-b', 'waitCriuIdle', 'stopPageServer')).toEqual([]);
    expect(kit.did('node-a', 'dump', 'killTree', 'resumeTree')).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.error).toBeUndefined();
    expect(m.notes ?? []).toEqual([]);
  });
});

describe('giving up after the retries', () => {
  it('says where the workload may be frozen, and keeps its images', async () => {
    const kit = running(['preflight', 'prepare', 'dump', 'transfer', 'restore']);
    const m = await kit.engine.giveUp('mig-1', "gave up after 7 attempts: node 'node-b' cannot be reached over SSH");
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      "gave up after 7 attempts: node 'node-b' cannot be reached over SSH; the workload may still be frozen on node-a (pid 4242): check both nodes before resuming it",
    );
    expect(kit.did('node-a', 'removeDir')).toEqual([]);
  });

  it('after the commit claim: says the destination runs it and which frozen source to kill', async () => {
    const kit = runningWith({ restoredPid: 777 }, [
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
    ]);
    const m = await kit.engine.giveUp('mig-1', 'gave up after 7 attempts: node-a unreachable');
    expect(m.error).toMatch(
      /the workload runs on node-b \(pid 777\) but its frozen source on node-a \(pid 4242\) was not killed: kill it there$/,
    );
  });

  it('after a commit that ended: completed (the destination is the workload), its images removed', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        restoredPid: 777,
        phases: [
          ...['preflight', 'prepare', 'dump', 'transfer', 'restore', 'verify', 'commit'].map((n) =>
            aPhase(n as Parameters<typeof aPhase>[0], true),
          ),
          aPhase('cleanup'),
        ],
      }),
    });
    const m = await kit.engine.giveUp('mig-1', 'gave up after 7 attempts: node-a unreachable');
    expect(m.state).toBe('completed');
    expect(m.error).toBe('gave up after 7 attempts: node-a unreachable');
    expect(kit.ops.argsOf('removeDir', 'node-a')).toEqual([['/var/lib/spotlift/images/mig-1']]);
  });
});

describe('mayBeFrozen: only a dump CRIU refused as tree_held froze nothing', () => {
  const held = 'criu dump failed on node-a (tree_held): The process to dump (pid 4242) is held by another tracer';
  const withPhases = (...phases: MigrationRecord['phases']) => aMigration({ phases });
  it('a refused dump, nothing else: not frozen', () => {
    expect(mayBeFrozen(withPhases(aPhase('prepare', true), { ...aPhase('dump', false), detail: held }))).toBe(false);
  });
  it('a dump that ended well is a freeze, whatever its detail quotes', () => {
    expect(mayBeFrozen(withPhases({ ...aPhase('dump', true), detail: held }))).toBe(true);
  });
  it('another phase that failed quoting tree_held is a freeze too', () => {
    expect(mayBeFrozen(withPhases(aPhase('dump', true), { ...aPhase('transfer', false), detail: held }))).toBe(true);
    expect(mayBeFrozen(withPhases({ ...aPhase('restore', false), detail: held }))).toBe(true);
  });
});
