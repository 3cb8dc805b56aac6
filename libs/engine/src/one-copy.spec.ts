/**
 * Only the job that froze a tree may resume it (issue 9): a job whose claim another job holds, whose
 * node-side lock another session holds, or whose dump CRIU refused because another tracer held the tree,
 * never freezes and never sends SIGCONT. Rollback and commit keep their own guards: a destination where CRIU
 * is still busy keeps the source frozen, and a commit whose source kill failed never rolls back.
 */
import { readFileSync } from 'node:fs';
import { aMigration, aWorkload } from '@spotlift/testing';
import { aPhase, engineKit, scriptHappyPath } from '@spotlift/testing';
import { MigrationInterrupted } from './run-control.js';

const seizeLog = (name: string) =>
  readFileSync(new URL(`../../criu/test/fixtures/logs/${name}`, import.meta.url), 'utf8');

describe('a job that did not freeze the tree never resumes it', () => {
  it.each(['dump-seize-concurrent-dump.log', 'dump-seize-strace.log'])(
    'a dump refused because another tracer holds the tree (%s, real CRIU log): failed, no SIGCONT, said why',
    async (log) => {
      const kit = engineKit();
      kit.shell
        .on({ node: 'node-a', match: /criu dump/, reply: { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n' } })
        .on({ node: 'node-a', match: /tail -n 200 .*dump\.log/, reply: { stdout: seizeLog(log) } });
      scriptHappyPath(kit.shell);
      const m = await kit.engine.run('mig-1', kit.control);
      expect(m.state).toBe('failed');
      expect(m.error).toMatch(/criu dump failed on node-a \(tree_held\): .*this command froze nothing/);
      expect(m.error).not.toMatch(/Nothing was frozen; check whether/);
      expect(m.rollbackReason).toBeUndefined();
      // Marked migrating for the dump, back to running on the stored record: nothing was frozen.
      expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
      expect(kit.shell.ran('node-a', /kill -CONT|kill -KILL/)).toEqual([]);
      expect(kit.shell.ran('node-b', /criu restore/)).toEqual([]);
    },
  );

  it('a dump that failed with the tree frozen rolls back; the error is the failure, said once (no cancel)', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-a', match: /criu dump/, reply: { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump failed on node-a/);
    expect(m.error).toBe(m.rollbackReason);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
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
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('completed');
    // the restart's own dump froze it; nothing resumed a tree before that
    const cont = kit.shell.ran('node-a', /kill -CONT/);
    expect(cont).toEqual([]);
  });

  it('the claim held by another job: failed before prepare, no node-side command touches the workload', async () => {
    const kit = engineKit({ migration: aMigration({ claimKey: 'proc:boot:ns:4242:99' }) });
    scriptHappyPath(kit.shell);
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
    expect(kit.shell.ran('node-a', /flock|criu dump|kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /criu page-server/)).toEqual([]);
  });

  it('the node-side lock held by another session: failed before any page-server or dump, no SIGCONT', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-a', match: /flock -n/, reply: { code: 75, stdout: 'LOCK_BUSY\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /another session holds the node-side lock of workload 'wl-1' on node-a \(node:node-a:pid:4242\)/,
    );
    expect(kit.shell.ran('node-a', /^l=\/run\/spotlift\/locks\/node_node-a_pid_4242\.lock; f=/)).toHaveLength(1);
    expect(kit.shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /criu page-server/)).toEqual([]);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
  });

  it("a job run again after its worker stopped before the freeze waits out a held lock (the dead worker's lease): retried, not failed", async () => {
    const kit = engineKit({
      migration: aMigration({ state: 'running', phases: [aPhase('preflight', true), aPhase('prepare')] }),
      workload: aWorkload({ state: 'running' }),
    });
    kit.shell.on({ node: 'node-a', match: /flock -n/, reply: { code: 75, stdout: 'LOCK_BUSY\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: false });
    expect((error as Error).message).toMatch(/the previous attempt's, until its lease ends/);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
    expect(kit.shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /criu page-server/)).toEqual([]);
  });

  it('recovery of a possibly frozen job waits while another session holds the lock: nothing decided, no SIGCONT', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump')],
      }),
      workload: aWorkload({ state: 'migrating' }),
    });
    kit.shell.on({ node: 'node-a', match: /flock -n/, reply: { code: 75, stdout: 'LOCK_BUSY\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect(error).toMatchObject({ transient: true, frozen: true });
    expect((error as Error).message).toMatch(/node-side lock of this workload on node-a is held by another session/);
    expect(kit.shell.ran('node-a', /kill -/)).toEqual([]);
    expect(kit.shell.ran('node-b', /kill -/)).toEqual([]);
  });
});

describe('rollback and commit keep the one copy', () => {
  it('a failed restore whose CRIU is still busy on the destination keeps the source frozen (no SIGCONT)', async () => {
    const kit = engineKit();
    kit.shell
      .on({ node: 'node-b', match: /criu restore/, reply: { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n' } })
      .on({ node: 'node-b', match: /CRIU_IDLE/, reply: { code: 1, stdout: 'CRIU_IDLE no 31337\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('criu is still running on node-b (pids 31337); the source stays frozen');
    expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
    expect((await kit.migrations.get('mig-1'))!.state).toBe('running');
  });

  it('a commit whose source kill fails never rolls back: the verified destination stays, a cancel is answered "committed"', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-a', match: /kill -KILL/, reply: { stdout: 'STATE T\n' } });
    scriptHappyPath(kit.shell);
    const error = await kit.engine.run('mig-1', kit.control).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationInterrupted);
    expect((error as Error).message).toBe('the frozen source pid 4242 on node-a did not die (state T)');
    expect(kit.shell.ran('node-b', /kill -KILL/)).toEqual([]);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
    const m = (await kit.migrations.get('mig-1'))!;
    expect(m.state).toBe('running');
    expect(m.phases.map((p) => p.name)).not.toContain('rollback');
    expect(await kit.flags.requestCancel('mig-1')).toBe('committed');
  });
});
