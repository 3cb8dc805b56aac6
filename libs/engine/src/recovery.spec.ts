/**
 * Recovery and rollback under the "exactly one running copy" rule: the source is resumed only once the
 * destination provably runs no copy, CRIU commands a dead worker left running are waited for, and a node
 * that does not answer stops the engine (MigrationInterrupted, record still 'running') instead of guessing.
 */
import { NodeUnreachableError, type MigrationRecord } from '@spotlift/domain';
import { aMigration, aWorkload } from '@spotlift/testing';
import { aPhase, engineKit, phaseNames, scriptHappyPath } from '@spotlift/testing';
import { fileMtimeCommand, parseFileMtime } from './node-ops/node-scripts.js';
import { mayBeFrozen } from './recovery.js';
import { MigrationInterrupted } from './run-control.js';

const upTo = (...names: Parameters<typeof aPhase>[0][]) =>
  names.map((n, i) => aPhase(n, i < names.length - 1 ? true : undefined));
const running = (...names: Parameters<typeof aPhase>[0][]) => runningWith({}, ...names);
const runningWith = (over: Partial<MigrationRecord>, ...names: Parameters<typeof aPhase>[0][]) =>
  engineKit({
    migration: aMigration({ state: 'running', phases: upTo(...names), ...over }),
    workload: aWorkload({ state: 'migrating', tree: [4242, 4243] }),
  });
const unreachable = (node: string) => new NodeUnreachableError(node, 'connect ECONNREFUSED');

describe('recovery of a job whose worker died', () => {
  it('during the dump: waits for the orphaned criu dump to end before resuming (a SIGCONT under it would not stick)', async () => {
    const kit = running('preflight', 'prepare', 'dump');
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    const idle = kit.shell.calls.findIndex(
      (c) => c.node === 'node-a' && /CRIU_IDLE/.test(c.command) && c.command.includes('/mig-1/src'),
    );
    const resume = kit.shell.calls.findIndex((c) => c.node === 'node-a' && /kill -CONT/.test(c.command));
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThan(resume);
    expect(m.notes?.[0]).toMatch(/picked up again after the previous attempt stopped during 'dump'/);
  });

  it('during the dump with the destination unreachable: no restore ever started, so the source is resumed anyway', async () => {
    const kit = running('preflight', 'prepare', 'dump', 'transfer');
    kit.shell.on({ node: 'node-b', match: /./, reply: () => unreachable('node-b') });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
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

  // The stats images' mtimes as GNU date prints them, and as busybox stat does (qemu lab guests).
  it.each([
    ['GNU date', '1001000000000\n', '1001300000000\n'],
    ['busybox stat', '1001 1970-01-01 00:16:41.000000000 +0000\n', '1001 1970-01-01 00:16:41.300000000 +0000\n'],
  ])(
    'during the restore with the destination unreachable: the source stays frozen and the job is interrupted, then a retry adopts (%s)',
    async (_, dumpMtime, restoreMtime) => {
      const kit = running('preflight', 'prepare', 'dump', 'transfer', 'restore');
      kit.shell.on({ node: 'node-b', match: /./, reply: () => unreachable('node-b'), times: 1 });
      kit.shell.on({ node: 'node-b', match: /restored\.pid/, reply: { stdout: 'PID 777\n' } });
      scriptHappyPath(kit.shell);
      const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationInterrupted);
      expect(error).toMatchObject({ transient: true, frozen: true });
      expect(kit.shell.ran('node-a', /kill -/)).toEqual([]);
      expect((await kit.migrations.get('mig-1'))!.state).toBe('running');

      // node-b answers again: the restored tree verifies, the commit is finished.
      kit.shell
        .on({ node: 'node-a', match: /date -r .*stats-dump/, reply: { stdout: dumpMtime } })
        .on({ node: 'node-b', match: /date -r .*stats-restore/, reply: { stdout: restoreMtime } });
      const m = await kit.engine.run('mig-1');
      expect(m.state).toBe('completed');
      expect(m.statsProblem).toBeUndefined();
      // Downtime from the stats images' modification times (the dead worker's timestamps are lost) and CRIU's frozen time.
      expect(m.downtimeMs).toBeCloseTo(300 + (m.criu.dump!.frozenTimeUs + m.criu.dump!.freezingTimeUs) / 1000, 3);
      expect(kit.shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
      expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
      expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
    },
  );

  it('during the restore while criu restore still runs there: neither adopts nor resumes', async () => {
    const kit = running('preflight', 'prepare', 'dump', 'transfer', 'restore');
    kit.shell.on({ node: 'node-b', match: /CRIU_IDLE/, reply: { code: 1, stdout: 'CRIU_IDLE no 31337\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toMatch(/criu is still running on node-b \(pids 31337\)/);
    expect(kit.shell.ran('node-a', /kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /kill -KILL/)).toEqual([]);
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
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toBe('criu restore failed on node-b');
    expect(kit.shell.ran('node-a', /kill -KILL/)).toEqual([]);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
  });

  it('during the commit: finishes it (the destination was verified and the commit claimed)', async () => {
    const kit = runningWith(
      { restoredPid: 777 },
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
    );
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(kit.shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
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
    const kit = engineKit();
    kit.shell
      .on({ node: 'node-b', match: /^s=\$\(awk/, reply: { stdout: 'STATE T\n' } })
      .on({ node: 'node-b', match: /kill -KILL/, reply: { stdout: 'STATE S\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('restored pid 777 on node-b did not die (state S); the source stays frozen');
    expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.state).toBe('running');
    expect(m.notes?.at(-1)).toMatch(/stopped without an end state: restored pid 777/);
  });

  it('a transient SSH error before any freeze interrupts (retry) instead of failing; the retry starts over', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-a', match: /echo TREE/, reply: () => unreachable('node-a'), times: 1 });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1').catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: false });
    expect(kit.shell.ran('node-a', /kill -|criu dump/)).toEqual([]);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(phaseNames(m).slice(0, 2)).toEqual(['preflight:fail', 'preflight:ok']);
  });

  it('a failure before any freeze leaves the workload record as others wrote it (a tree found gone stays gone)', async () => {
    const kit = engineKit();
    kit.shell.on({
      node: 'node-a',
      match: /echo TREE/,
      // The tree exited; a refresh of the workload recorded that meanwhile.
      reply: () => (void kit.workloads.save(aWorkload({ state: 'gone' })), { code: 3 }),
    });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/no longer runs on node-a/);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('gone');
  });

  it('a lost job lock stops at the next boundary without touching nodes or the record', async () => {
    const kit = engineKit();
    let lost = false;
    kit.shell.on({
      node: 'node-a',
      match: /criu dump/,
      reply: () => ((lost = true), { stdout: 'SPOTLIFT_TIMES 1 2 0\n' }),
      times: 1,
    });
    scriptHappyPath(kit.shell);
    const control = { ...kit.control, lost: () => lost };
    const error = await kit.engine.run('mig-1', control).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: true });
    expect(kit.shell.ran('node-a', /kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /criu restore/)).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.notes ?? []).toEqual([]);
  });

  it('a job lock lost before any freeze stops at the next boundary too: no end state, nothing more on the nodes', async () => {
    const kit = engineKit();
    let lost = false;
    // The lease goes while 'prepare' starts the destination's page-server; 'dump' is the next boundary.
    const exec = kit.shell.exec.bind(kit.shell);
    kit.shell.exec = async (node, command, opts) => {
      const r = await exec(node, command, opts);
      if (node.id === 'node-b' && /criu page-server/.test(command)) lost = true;
      return r;
    };
    scriptHappyPath(kit.shell);
    const control = { ...kit.control, lost: () => lost };
    const error = await kit.engine.run('mig-1', control).catch((e: unknown) => e);
    expect(error).toMatchObject({ name: 'MigrationInterrupted', transient: true, frozen: false });
    // Not settled as a failure by this worker: no page-server stopped, no workload or record written.
    expect(kit.shell.ran('node-b', /CRIU_IDLE/)).toEqual([]);
    expect(kit.shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.error).toBeUndefined();
    expect(m.notes ?? []).toEqual([]);
  });
});

describe('giving up after the retries', () => {
  it('says where the workload may be frozen, and keeps its images', async () => {
    const kit = running('preflight', 'prepare', 'dump', 'transfer', 'restore');
    const m = await kit.engine.giveUp('mig-1', "gave up after 7 attempts: node 'node-b' cannot be reached over SSH");
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      "gave up after 7 attempts: node 'node-b' cannot be reached over SSH; the workload may still be frozen on node-a (pid 4242): check both nodes before resuming it",
    );
    expect(kit.shell.ran('node-a', /rm -rf/)).toEqual([]);
  });

  it('after the commit claim: says the destination runs it and which frozen source to kill', async () => {
    const kit = runningWith(
      { restoredPid: 777 },
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
    );
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
    scriptHappyPath(kit.shell);
    const m = await kit.engine.giveUp('mig-1', 'gave up after 7 attempts: node-a unreachable');
    expect(m.state).toBe('completed');
    expect(m.error).toBe('gave up after 7 attempts: node-a unreachable');
    expect(kit.shell.ran('node-a', /^rm -rf/)).toHaveLength(1);
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
