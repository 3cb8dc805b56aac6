/**
 * Cancel: a flag the engine reads at every phase boundary and, during a dump, every few milliseconds. Before
 * the commit point a cancel rolls back (source resumed, destination tree killed, images removed); from the
 * commit claim on, it is refused. The flag and the commit claim are one atomic decision (MigrationFlags).
 * Over the fake node operations (fakeEngineKit): the nodes answer by operation name.
 */
import { aMigration, aPhase, fakeEngineKit, phaseNames, scriptHappyOps } from '@spotlift/testing';

const ok = (code = 0) => ({ code, stdout: '', stderr: '' });

function kitOf(...args: Parameters<typeof fakeEngineKit>) {
  const kit = fakeEngineKit(...args);
  const did = (node: string, names: RegExp) =>
    kit.ops.sequence().filter((c) => c.endsWith(`@${node}`) && names.test(c.split('@')[0]!));
  return { ...kit, did, happy: () => scriptHappyOps(kit.ops, kit.streams) };
}

/** A dump that runs until the destination's page-server is killed, as a real `criu dump` streaming to it would. */
function longDump(kit: ReturnType<typeof kitOf>) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const state = { dumpStarted: false };
  kit.ops
    .on(
      'waitCriuIdle',
      () => {
        release();
        return { idle: true, pids: [] };
      },
      { node: 'node-b' },
    )
    .on(
      'dump',
      async () => {
        state.dumpStarted = true;
        await released;
        return { ...ok(1), startNs: 1n, endNs: 2n };
      },
      { node: 'node-a' },
    );
  return state;
}

describe('cancel', () => {
  it('of a job that has not started: nothing runs on the nodes, state cancelled', async () => {
    const kit = kitOf();
    kit.happy();
    expect(await kit.flags.requestCancel('mig-1')).toBe('requested');
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.error).toBe('cancelled by request before any freeze; the workload was not touched');
    expect(kit.ops.calls.filter((c) => c.op !== 'removeDir')).toEqual([]);
    expect(kit.streams.calls).toEqual([]);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
  });

  it('during the dump: the destination page-server is killed so CRIU aborts and resumes the tree, then rollback', async () => {
    const kit = kitOf();
    const dump = longDump(kit);
    kit.happy();
    const run = kit.engine.run('mig-1', kit.control);
    while (!dump.dumpStarted) await new Promise((r) => setTimeout(r, 2));
    await kit.flags.requestCancel('mig-1');
    const m = await run;
    expect(m.state).toBe('cancelled');
    expect(phaseNames(m)).toEqual(['preflight:ok', 'prepare:ok', 'dump:fail', 'rollback:ok', 'cleanup:ok']);
    expect(m.error).toMatch(/^cancelled by request during 'dump' \(criu dump failed on node-a/);
    // The page-server (not criu dump, which may have its parasite inside the workload) was what got killed.
    expect(kit.did('node-b', /^waitCriuIdle$/).length).toBeGreaterThanOrEqual(1);
    expect(kit.did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(kit.did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it("during the dump the flag is read every `cancelPollMs` (the engine's configured period)", async () => {
    const kit = kitOf({ config: { cancelPollMs: 5 } });
    const dump = longDump(kit);
    kit.happy();
    let reads = 0;
    const control = {
      ...kit.control,
      cancelRequested: () => {
        reads++;
        return kit.control.cancelRequested();
      },
    };
    const run = kit.engine.run('mig-1', control);
    while (!dump.dumpStarted) await new Promise((r) => setTimeout(r, 2));
    const before = reads;
    await new Promise((r) => setTimeout(r, 300));
    const during = reads - before;
    await kit.flags.requestCancel('mig-1');
    expect((await run).state).toBe('cancelled');
    // 5 ms apart: dozens of reads in 300 ms (a few on a loaded machine); 500 ms apart (the default) one at most.
    expect(during).toBeGreaterThanOrEqual(2);
  });

  it('the watch ends with the attempt: the flag is not read any more once the run returned', async () => {
    const kit = kitOf({ config: { cancelPollMs: 2 } });
    kit.happy();
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
    const kit = kitOf();
    kit.ops.on(
      'startPageServer',
      async () => {
        await kit.flags.requestCancel('mig-1');
        return ok();
      },
      { node: 'node-b' },
    );
    kit.happy();
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.error).toBe('cancelled by request before any freeze; the workload was not touched');
    const order = kit.ops.sequence();
    const started = order.indexOf('startPageServer@node-b');
    const stopped = order.indexOf('waitCriuIdle@node-b', started);
    expect(started).toBeGreaterThan(-1);
    expect(stopped).toBeGreaterThan(started);
    expect(kit.did('node-a', /^(dump|killTree|resumeTree)$/)).toEqual([]);
  });

  it('between phases: stops at the next boundary (before restore) and rolls back', async () => {
    const kit = kitOf();
    // Request the cancel once the (pre-armed) image stream starts on the source.
    kit.happy();
    const orig = kit.streams.exec.bind(kit.streams);
    kit.streams.exec = async (node, command, opts) => {
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
    expect(kit.did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
    expect(kit.did('node-a', /^resumeTree$/)).toHaveLength(1);
  });

  it('after verify, before the commit: the commit claim loses, the restored tree is killed, the source resumes', async () => {
    const kit = kitOf();
    kit.ops.on(
      'processState',
      () => {
        void kit.flags.requestCancel('mig-1');
        return 'S';
      },
      { node: 'node-b' },
    );
    kit.happy();
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
    expect(kit.ops.argsOf('killTree', 'node-b')).toEqual([[777]]);
    expect(kit.did('node-a', /^killTree$/)).toEqual([]);
    expect(kit.did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('after the commit claim: refused, the migration completes', async () => {
    const kit = kitOf();
    kit.happy();
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('completed');
    expect(await kit.flags.requestCancel('mig-1')).toBe('committed');
    expect(await kit.flags.cancelRequested('mig-1')).toBe(false);
  });

  it('of a recovered job that a dead worker left restored on the destination: rolls back instead of adopting', async () => {
    const kit = kitOf({
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
    kit.ops.on('readPidfile', 777, { node: 'node-b', when: (_n, path) => path.endsWith('/restored.pid') });
    kit.happy();
    await kit.flags.requestCancel('mig-1');
    const m = await kit.engine.run('mig-1', kit.control);
    expect(m.state).toBe('cancelled');
    expect(m.rollbackReason).toMatch(/^cancelled by request; the previous attempt had stopped during 'restore'/);
    expect(kit.ops.argsOf('killTree', 'node-b')).toEqual([[777]]);
    expect(kit.did('node-a', /^resumeTree$/)).toHaveLength(1);
  });
});
