/**
 * The engine's decisions over the fake node operations (FakeProcessOps): each node answers by operation name,
 * CRIU's stats-dump and stats-restore are real outputs captured on the lab kernel, and the image stream runs
 * through the real DirectoryStreamer over a scripted shell. What each operation runs on a node is golden in
 * node-ops (process-ops.golden.spec.ts, node-commands.golden.spec.ts); what runs on the real kernel is
 * covered by test/migration.e2e-spec.ts. Here: every failure branch and every recovery point, deterministically.
 */
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { TAR, aMigration, aWorkload, fakeEngineKit, scriptHappyOps } from '@spotlift/testing';

const IMAGES = '/var/lib/spotlift/images/mig-1';
const ok = (over: { code?: number; stdout?: string } = {}) => ({ code: 0, stdout: '', stderr: '', ...over });

function setup(migration: MigrationRecord = aMigration(), workload: WorkloadRecord = aWorkload()) {
  const kit = fakeEngineKit({ migration, workload });
  /** The operations called on `node` whose names match `ops`, as `op@node`. */
  const did = (node: string, names: RegExp) =>
    kit.ops.sequence().filter((c) => c.endsWith(`@${node}`) && names.test(c.split('@')[0]!));
  return { ...kit, did, happy: () => scriptHappyOps(kit.ops, kit.streams) };
}

const names = (m: MigrationRecord) => m.phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

describe('MigrationEngine, stop-and-copy', () => {
  it('completes: pages via page-server, images streamed and checksummed, restore, verify, then the source is killed', async () => {
    const { ops, engine, workloads, happy } = setup();
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.unanswered).toEqual([]);
    expect(names(m)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    expect(ops.argsOf('startPageServer', 'node-b')).toHaveLength(1);
    // The freezing dump (no leaveRunning: --leave-stopped) to the page-server's address on node-b.
    expect(ops.argsOf('dump', 'node-a')).toEqual([
      [
        4242,
        `${IMAGES}/src`,
        expect.objectContaining({ address: expect.stringMatching(/^10\.0\.0\.\d+$/), port: expect.any(Number) }),
        expect.not.objectContaining({ leaveRunning: true }),
        expect.any(Number),
      ],
    ]);
    expect(m.restoredPid).toBe(777);
    // Downtime = restore end - (dump end - CRIU frozen - freezing), on the nodes' clocks.
    const d = m.criu.dump!;
    expect(m.downtimeMs).toBeCloseTo(300 + (d.frozenTimeUs + d.freezingTimeUs) / 1000, 3);
    expect(m.bytes.pages).toBe(d.pagesWritten * 4096);
    expect(m.bytes.images).toBe(TAR.length);
    expect(m.criu.restore?.restoreTimeUs).toBeGreaterThan(0);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
    // The migration's directory (process memory, cpuinfo images) removed on both nodes.
    expect(ops.argsOf('removeDir', 'node-a')).toEqual([[IMAGES]]);
    expect(ops.argsOf('removeDir', 'node-b')).toEqual([[IMAGES]]);
  });

  it('fails without touching the workload when the pid is gone at preflight', async () => {
    const { ops, engine, workloads, did, happy } = setup();
    ops.on('inspectTree', undefined, { node: 'node-a', when: (_n, pid) => pid === 4242 });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/no longer runs on node-a/);
    expect(did('node-a', /^(dump|killTree|resumeTree)$/)).toEqual([]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('fails without touching the workload when the destination lacks memory', async () => {
    const { ops, engine, did, happy } = setup();
    ops.on('memoryAndDisk', ok({ stdout: 'Looks good.\nMEM_AVAILABLE_KB 1000\n' }));
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/node-b has 1 MiB available, the workload needs 70 MiB/);
    expect(did('node-a', /^(dump|killTree|resumeTree)$/)).toEqual([]);
  });

  it('rolls back when criu dump fails: the source is resumed, nothing restored', async () => {
    const { ops, engine, did, happy } = setup();
    ops
      .on('dump', { ...ok({ code: 1 }), startNs: 1n, endNs: 2n })
      .on('tail', '(00.01) Error (criu/cr-dump.c:2060): Dumping FAILED.\n', {
        node: 'node-a',
        when: (_n, path, lines) => path === `${IMAGES}/src/dump.log` && lines === 200,
      });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/criu dump failed on node-a/);
    expect(did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
  });

  it('waits for the page-server to close its images after the dump, before anything reads them', async () => {
    const { ops, streams, engine, happy } = setup();
    // What had run on the nodes when the source began streaming the images.
    let beforeStream: string[] | undefined;
    streams.on({
      node: 'node-a',
      match: /(?:^|; )tar -C/,
      reply: () => {
        beforeStream = ops.sequence();
        return { stdout: TAR.toString() };
      },
    });
    happy();
    expect((await engine.run('mig-1')).state).toBe('completed');
    const dumped = beforeStream!.indexOf('dump@node-a');
    const waited = beforeStream!.indexOf('awaitPageServerExit@node-b');
    expect(dumped).toBeGreaterThanOrEqual(0);
    expect(waited).toBeGreaterThan(dumped);
    expect(ops.argsOf('awaitPageServerExit', 'node-b')[0]?.[0]).toBe(`${IMAGES}/dst`);
  });

  it('rolls back when the page-server still runs after the dump: its images are not restored from', async () => {
    const { ops, engine, did, happy } = setup();
    ops.on('awaitPageServerExit', ok({ code: 1 }), { node: 'node-b' });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/page-server on node-b did not finish writing the images/);
    expect(did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
  });

  it('rolls back when the image stream arrives corrupted (checksum mismatch)', async () => {
    const { ops, streams, engine, did, happy } = setup();
    streams.on({ node: 'node-b', match: /sha256sum/, reply: { stdout: `${'0'.repeat(64)}\n` } });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/checksum mismatch on node-b/);
    expect(did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
    expect(did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(did('node-a', /^killTree$/)).toEqual([]);
    expect(ops.unanswered).toEqual([]);
  });

  it('rolls back when the restored tree is not running (stopped): it is killed, the source resumes', async () => {
    const { ops, engine, workloads, did, happy } = setup();
    ops.on('processState', 'T', { node: 'node-b', when: (_n, pid) => pid === 777 });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/restored pid 777 on node-b is not running \(state T\)/);
    expect(ops.argsOf('killTree', 'node-b')).toEqual([[777]]);
    expect(did('node-a', /^resumeTree$/)).toHaveLength(1);
    expect(did('node-a', /^killTree$/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('records a workload that exited during the dump as gone, not as resumed', async () => {
    const { ops, engine, workloads, happy } = setup();
    ops.on('dump', ok({ code: 1 })).on('resumeTree', 'gone', { node: 'node-a' });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/^workload gone: pid 4242 on node-a exited .*it runs nowhere/);
    expect(m.phases.find((p) => p.name === 'rollback')!.detail).toMatch(/gone from node-a/);
    expect((await workloads.get('wl-1'))!.state).toBe('gone');
  });

  it('keeps image directories when asked (forensics)', async () => {
    const { ops, engine, happy } = setup(aMigration({ keepImages: true }));
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.argsOf('removeDir', 'node-a')).toEqual([]);
  });

  it('does nothing for a migration that already ended', async () => {
    const { ops, streams, engine } = setup(aMigration({ state: 'completed' }));
    await engine.run('mig-1');
    expect(ops.calls).toEqual([]);
    expect(streams.calls).toEqual([]);
  });
});

describe('MigrationEngine recovery after a dead worker (re-run of a running job)', () => {
  const phase = (name: MigrationRecord['phases'][number]['name']) => ({ name, startedAt: '2026-01-01T00:00:00Z' });

  it.each(['dump', 'transfer', 'restore'] as const)(
    'during %s with no restored tree: resumes the source',
    async (last) => {
      const { ops, engine, did, happy } = setup(
        aMigration({ state: 'running', phases: [phase('preflight'), phase('prepare'), phase(last)] }),
      );
      ops.on('readPidfile', undefined, { node: 'node-b', when: (_n, path) => path === `${IMAGES}/dst/restored.pid` });
      happy();
      const m = await engine.run('mig-1');
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(new RegExp(`stopped during '${last}'`));
      expect(did('node-a', /^resumeTree$/)).toHaveLength(1);
      expect(did('node-a', /^killTree$/)).toEqual([]);
    },
  );

  it('during restore with a running restored tree: verifies it and commits instead of rolling back', async () => {
    const { ops, engine, workloads, did, happy } = setup(
      aMigration({
        state: 'running',
        phases: [phase('preflight'), phase('prepare'), phase('dump'), phase('transfer'), phase('restore')],
      }),
      aWorkload({ state: 'migrating', tree: [4242, 4243] }),
    );
    ops.on('readPidfile', 777, { node: 'node-b', when: (_n, path) => path === `${IMAGES}/dst/restored.pid` });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.argsOf('killTree', 'node-a')).toEqual([[4242]]);
    expect(did('node-a', /^resumeTree$/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777 });
  });

  it('during commit: finishes the commit (the destination was already verified)', async () => {
    const { ops, engine, did, happy } = setup(
      aMigration({ state: 'running', restoredPid: 777, phases: [phase('verify'), phase('commit')] }),
    );
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.argsOf('killTree', 'node-a')).toEqual([[4242]]);
    expect(did('node-a', /^resumeTree$/)).toEqual([]);
  });

  it('during commit, run again after the commit was saved: kills nothing (the record names the restored pid on node-b)', async () => {
    const { engine, workloads, did, happy } = setup(
      aMigration({ state: 'running', restoredPid: 777, phases: [phase('verify'), phase('commit')] }),
      aWorkload({ nodeId: 'node-b', pid: 777, state: 'running' }),
    );
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(did('node-a', /^(killTree|resumeTree)$/)).toEqual([]);
    expect(did('node-b', /^(killTree|resumeTree)$/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
  });

  it('before any freeze: releases what the dead attempt started and runs the migration again from preflight', async () => {
    const { ops, engine, workloads, happy } = setup(
      aMigration({ state: 'running', phases: [phase('preflight'), phase('prepare')] }),
      aWorkload({ state: 'migrating' }),
    );
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.notes?.[0]).toMatch(/picked up again after the previous attempt stopped during 'prepare'/);
    // The dead attempt's page-server is looked for (and killed) before anything starts again.
    const first = ops.sequence().indexOf('waitCriuIdle@node-b');
    const preflight = ops.sequence().indexOf('memoryAndDisk@node-b');
    expect(first).toBeGreaterThanOrEqual(0);
    expect(first).toBeLessThan(preflight);
    expect(names(m).slice(2)).toEqual([
      'preflight:ok',
      'prepare:ok',
      'dump:ok',
      'transfer:ok',
      'restore:ok',
      'verify:ok',
      'commit:ok',
      'cleanup:ok',
    ]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });
});
