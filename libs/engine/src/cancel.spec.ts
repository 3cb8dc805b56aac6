/**
 * Cancel: a flag the engine reads at every phase boundary and, during a dump, every few milliseconds. Before
 * the commit point a cancel rolls back (source resumed, destination tree killed, images removed); from the
 * commit claim on, it is refused. The flag and the commit claim are one atomic decision (MigrationFlags).
 */
import type { NodeTarget } from '@spotlift/domain';
import { ScriptedNodeShell, aMigration } from '@spotlift/testing';
import type { CommandResult, ExecOptions } from '@spotlift/transport';
import { aPhase, engineKit, phaseNames, scriptHappyPath } from '@spotlift/testing';

/** A dump that runs until the destination's page-server is killed, as a real `criu dump` streaming to it would. */
class LongDumpShell extends ScriptedNodeShell {
  private release!: () => void;
  private readonly released = new Promise<void>((r) => (this.release = r));
  dumpStarted = false;

  override async exec(node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    if (node.id === 'node-b' && /CRIU_IDLE/.test(command)) this.release();
    if (node.id === 'node-a' && /criu dump/.test(command)) {
      this.dumpStarted = true;
      void super.exec(node, command, opts);
      await this.released;
      return { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n', stderr: '' };
    }
    return super.exec(node, command, opts);
  }
}

describe('cancel', () => {
  it('of a job that has not started: nothing runs on the nodes, state cancelled', async () => {
    const kit = engineKit();
    scriptHappyPath(kit.shell);
    expect(await kit.flags.requestCancel('mig-1')).toBe('requested');
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.error).toBe('cancelled by request before any freeze; the workload was not touched');
    expect(kit.shell.calls.filter((c) => !/^rm -rf/.test(c.command))).toEqual([]);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
  });

  it('during the dump: the destination page-server is killed so CRIU aborts and resumes the tree, then rollback', async () => {
    const shell = new LongDumpShell();
    const kit = engineKit({ shell });
    scriptHappyPath(shell);
    const run = kit.engine.run('mig-1', kit.control);
    while (!shell.dumpStarted) await new Promise((r) => setTimeout(r, 2));
    await kit.flags.requestCancel('mig-1');
    const m = await run;
    expect(m.state).toBe('cancelled');
    expect(phaseNames(m)).toEqual(['preflight:ok', 'prepare:ok', 'dump:fail', 'rollback:ok', 'cleanup:ok']);
    expect(m.error).toMatch(/^cancelled by request during 'dump' \(criu dump failed on node-a/);
    // The page-server (not criu dump, which may have its parasite inside the workload) was what got killed.
    expect(shell.ran('node-b', /CRIU_IDLE/).length).toBeGreaterThanOrEqual(1);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it("during the dump the flag is read every `cancelPollMs` (the engine's configured period)", async () => {
    const shell = new LongDumpShell();
    const kit = engineKit({ shell, config: { cancelPollMs: 5 } });
    scriptHappyPath(shell);
    let reads = 0;
    const control = {
      ...kit.control,
      cancelRequested: () => {
        reads++;
        return kit.control.cancelRequested();
      },
    };
    const run = kit.engine.run('mig-1', control);
    while (!shell.dumpStarted) await new Promise((r) => setTimeout(r, 2));
    const before = reads;
    await new Promise((r) => setTimeout(r, 300));
    const during = reads - before;
    await kit.flags.requestCancel('mig-1');
    expect((await run).state).toBe('cancelled');
    // 5 ms apart: dozens of reads in 300 ms (a few on a loaded machine); 500 ms apart (the default) one at most.
    expect(during).toBeGreaterThanOrEqual(2);
  });

  it('the watch ends with the attempt: the flag is not read any more once the run returned', async () => {
    const kit = engineKit({ config: { cancelPollMs: 2 } });
    scriptHappyPath(kit.shell);
    let reads = 0;
    const control = {
      ...kit.control,
      cancelRequested: () => {
        reads++;
        return kit.control.cancelRequested();
      },
    };
    const m = await kit.engine.run('mig-1', control);
    expect(m.state).toBe('completed');
    const after = reads;
    // Were the watch still on, a phase the record shows open (e.g. another run's dump) would be polled.
    m.phases.push({ name: 'dump', startedAt: new Date().toISOString() });
    await new Promise((r) => setTimeout(r, 50));
    expect(reads).toBe(after);
  });

  it("after 'prepare', before the dump: the page-server it started is stopped, nothing frozen", async () => {
    const kit = engineKit();
    const exec = kit.shell.exec.bind(kit.shell);
    kit.shell.exec = async (node, command, opts) => {
      const r = await exec(node, command, opts);
      if (node.id === 'node-b' && /criu page-server/.test(command)) await kit.flags.requestCancel('mig-1');
      return r;
    };
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.error).toBe('cancelled by request before any freeze; the workload was not touched');
    const order = kit.shell.calls.map((c) => `${c.node} ${c.command}`);
    const started = order.findIndex((c) => /^node-b .*criu page-server/.test(c));
    const stopped = order.findIndex((c) => /^node-b [\s\S]*CRIU_IDLE/.test(c));
    expect(started).toBeGreaterThan(-1);
    expect(stopped).toBeGreaterThan(started);
    expect(kit.shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
  });

  it('between phases: stops at the next boundary (before restore) and rolls back', async () => {
    const kit = engineKit();
    scriptHappyPath(kit.shell);
    // Request the cancel once the (pre-armed) image stream starts on the source.
    const orig = kit.shell.exec.bind(kit.shell);
    kit.shell.exec = async (node, command, opts) => {
      if (/(?:^|; )tar -C/.test(command)) await kit.flags.requestCancel('mig-1');
      return orig(node, command, opts);
    };
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'rollback:ok',
      'cleanup:ok',
    ]);
    expect(m.rollbackReason).toBe("cancelled by request during 'transfer'");
    expect(kit.shell.ran('node-b', /criu restore/)).toEqual([]);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
  });

  it('after verify, before the commit: the commit claim loses, the restored tree is killed, the source resumes', async () => {
    const kit = engineKit();
    kit.shell.on({
      node: 'node-b',
      match: /^s=\$\(awk/,
      reply: () => {
        void kit.flags.requestCancel('mig-1');
        return { stdout: 'STATE S\n' };
      },
    });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(phaseNames(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'restore:ok',
      'verify:ok',
      'rollback:ok',
      'cleanup:ok',
    ]);
    expect(kit.shell.ran('node-b', /kill -KILL/)).toHaveLength(1);
    expect(kit.shell.ran('node-a', /kill -KILL/)).toEqual([]);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('after the commit claim: refused, the migration completes', async () => {
    const kit = engineKit();
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('completed');
    expect(await kit.flags.requestCancel('mig-1')).toBe('committed');
    expect(await kit.flags.cancelRequested('mig-1')).toBe(false);
  });

  it('of a recovered job that a dead worker left restored on the destination: rolls back instead of adopting', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        phases: [
          aPhase('preflight', true),
          aPhase('prepare', true),
          aPhase('dump', true),
          aPhase('transfer', true),
          aPhase('restore'),
        ],
      }),
    });
    kit.shell.on({ node: 'node-b', match: /restored\.pid/, reply: { stdout: 'PID 777\n' } });
    scriptHappyPath(kit.shell);
    await kit.flags.requestCancel('mig-1');
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.rollbackReason).toMatch(/^cancelled by request; the previous attempt had stopped during 'restore'/);
    expect(kit.shell.ran('node-b', /kill -KILL/)).toHaveLength(1);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
  });
});
