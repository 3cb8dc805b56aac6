/**
 * The engine's decisions, with a scripted node shell replaying real outputs (CRIU's stats-dump and
 * stats-restore captured from real runs on the lab kernel). What runs on the real kernel is covered by
 * test/migration.e2e-spec.ts; here: every failure branch and every recovery point, deterministically.
 */
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import { ScriptedNodeShell, TAR, aMigration, aNode, aWorkload, scriptHappyPath } from '@spotlift/testing';
import { SystemClock } from './clock.js';
import { DEFAULT_ENGINE_CONFIG } from './engine.types.js';
import { MigrationEngine } from './migration-engine.js';
import { NodeOps } from './node-ops/node-ops.js';

function setup(migration: MigrationRecord = aMigration(), workload: WorkloadRecord = aWorkload()) {
  const shell = new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  void migrations.save(migration);
  void workloads.save(workload);
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    new NodeOps(shell),
    new DirectoryStreamer(shell),
    new SystemClock(),
    DEFAULT_ENGINE_CONFIG,
  );
  return { shell, engine, migrations, workloads };
}

const names = (m: MigrationRecord) => m.phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

describe('MigrationEngine, stop-and-copy', () => {
  it('completes: pages via page-server, images streamed and checksummed, restore, verify, then the source is killed', async () => {
    const { shell, engine, workloads } = setup();
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
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
    expect(shell.ran('node-b', /criu page-server .*--daemon/)).toHaveLength(1);
    expect(
      shell.ran('node-a', /criu dump -t 4242 .*--leave-stopped.*--page-server --address 10\.0\.0\.\d+ --port \d+/),
    ).toHaveLength(1);
    expect(m.restoredPid).toBe(777);
    // Downtime = restore end - (dump end - CRIU frozen - freezing), on the nodes' clocks.
    const d = m.criu.dump!;
    expect(m.downtimeMs).toBeCloseTo(300 + (d.frozenTimeUs + d.freezingTimeUs) / 1000, 3);
    expect(m.bytes.pages).toBe(d.pagesWritten * 4096);
    expect(m.bytes.images).toBe(TAR.length);
    expect(m.criu.restore?.restoreTimeUs).toBeGreaterThan(0);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
    // The migration's directory (process memory, cpuinfo images) removed on both nodes.
    expect(shell.ran('node-a', /^rm -rf \/var\/lib\/spotlift\/images\/mig-1$/)).toHaveLength(1);
    expect(shell.ran('node-b', /^rm -rf \/var\/lib\/spotlift\/images\/mig-1$/)).toHaveLength(1);
  });

  it('fails without touching the workload when the pid is gone at preflight', async () => {
    const { shell, engine, workloads } = setup();
    shell.on({ node: 'node-a', match: /echo TREE/, reply: { code: 3, stderr: 'no process with pid 4242' } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/no longer runs on node-a/);
    expect(shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
    expect((await workloads.get('wl-1'))!.state).toBe('running');
  });

  it('fails without touching the workload when the destination lacks memory', async () => {
    const { shell, engine } = setup();
    shell.on({ match: /criu check/, reply: { stdout: 'Looks good.\nMEM_AVAILABLE_KB 1000\n' } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/node-b has 1 MiB available, the workload needs 70 MiB/);
    expect(shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
  });

  it('rolls back when criu dump fails: the source is resumed, nothing restored', async () => {
    const { shell, engine } = setup();
    shell.on({ node: 'node-a', match: /criu dump/, reply: { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n' } }).on({
      node: 'node-a',
      match: /tail -n 200 .*dump\.log/,
      reply: { stdout: '(00.01) Error (criu/cr-dump.c:2060): Dumping FAILED.\n' },
    });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/criu dump failed on node-a/);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
  });

  it('waits for the page-server to close its images after the dump, before anything reads them', async () => {
    const { shell, engine } = setup();
    scriptHappyPath(shell);
    expect((await engine.run('mig-1')).state).toBe('completed');
    const order = shell.calls.map((c) => c.command);
    const dumped = order.findIndex((c) => /criu dump/.test(c));
    const waited = order.findIndex((c) => /page-server\.pid.*while/.test(c));
    const streamed = order.findIndex((c) => /tar -C/.test(c));
    expect(dumped).toBeGreaterThanOrEqual(0);
    expect(waited).toBeGreaterThan(dumped);
    expect(streamed).toBeGreaterThan(waited);
  });

  it('rolls back when the page-server still runs after the dump: its images are not restored from', async () => {
    const { shell, engine } = setup();
    shell.on({ node: 'node-b', match: /page-server\.pid.*while/, reply: { code: 1 } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/page-server on node-b did not finish writing the images/);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
  });

  it('rolls back when the image stream arrives corrupted (checksum mismatch)', async () => {
    const { shell, engine } = setup();
    shell.on({ node: 'node-b', match: /sha256sum/, reply: { stdout: `${'0'.repeat(64)}\n` } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/checksum mismatch on node-b/);
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -KILL/)).toEqual([]);
  });

  it('rolls back when the restored tree is not running (stopped): it is killed, the source resumes', async () => {
    const { shell, engine, workloads } = setup();
    shell.on({ node: 'node-b', match: /^s=\$\(awk/, reply: { stdout: 'STATE T\n' } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/restored pid 777 on node-b is not running \(state T\)/);
    expect(shell.ran('node-b', /kill -KILL/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -KILL/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('records a workload that exited during the dump as gone, not as resumed', async () => {
    const { shell, engine, workloads } = setup();
    shell
      .on({ node: 'node-a', match: /criu dump/, reply: { code: 1 } })
      .on({ node: 'node-a', match: /kill -CONT/, reply: { stdout: 'STATE gone\n' } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/^workload gone: pid 4242 on node-a exited .*it runs nowhere/);
    expect(m.phases.find((p) => p.name === 'rollback')!.detail).toMatch(/gone from node-a/);
    expect((await workloads.get('wl-1'))!.state).toBe('gone');
  });

  it('keeps image directories when asked (forensics)', async () => {
    const { shell, engine } = setup(aMigration({ keepImages: true }));
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(shell.ran('node-a', /^rm -rf \S+$/)).toEqual([]);
  });

  it('does nothing for a migration that already ended', async () => {
    const { shell, engine } = setup(aMigration({ state: 'completed' }));
    await engine.run('mig-1');
    expect(shell.calls).toEqual([]);
  });
});

describe('MigrationEngine recovery after a dead worker (re-run of a running job)', () => {
  const phase = (name: MigrationRecord['phases'][number]['name']) => ({ name, startedAt: '2026-01-01T00:00:00Z' });

  it.each(['dump', 'transfer', 'restore'] as const)(
    'during %s with no restored tree: resumes the source',
    async (last) => {
      const { shell, engine } = setup(
        aMigration({ state: 'running', phases: [phase('preflight'), phase('prepare'), phase(last)] }),
      );
      shell.on({ node: 'node-b', match: /restored\.pid/, reply: { stdout: '' } });
      scriptHappyPath(shell);
      const m = await engine.run('mig-1');
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(new RegExp(`stopped during '${last}'`));
      expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
      expect(shell.ran('node-a', /kill -KILL/)).toEqual([]);
    },
  );

  it('during restore with a running restored tree: verifies it and commits instead of rolling back', async () => {
    const { shell, engine, workloads } = setup(
      aMigration({
        state: 'running',
        phases: [phase('preflight'), phase('prepare'), phase('dump'), phase('transfer'), phase('restore')],
      }),
      aWorkload({ state: 'migrating', tree: [4242, 4243] }),
    );
    shell.on({ node: 'node-b', match: /restored\.pid/, reply: { stdout: 'PID 777\n' } });
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -CONT/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777 });
  });

  it('during commit: finishes the commit (the destination was already verified)', async () => {
    const { shell, engine } = setup(
      aMigration({ state: 'running', restoredPid: 777, phases: [phase('verify'), phase('commit')] }),
    );
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(shell.ran('node-a', /kill -KILL/)).toHaveLength(1);
    expect(shell.ran('node-a', /kill -CONT/)).toEqual([]);
  });

  it('during commit, run again after the commit was saved: kills nothing (the record names the restored pid on node-b)', async () => {
    const { shell, engine, workloads } = setup(
      aMigration({ state: 'running', restoredPid: 777, phases: [phase('verify'), phase('commit')] }),
      aWorkload({ nodeId: 'node-b', pid: 777, state: 'running' }),
    );
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(shell.ran('node-a', /kill -/)).toEqual([]);
    expect(shell.ran('node-b', /kill -/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, state: 'running' });
  });

  it('before any freeze: releases what the dead attempt started and runs the migration again from preflight', async () => {
    const { shell, engine, workloads } = setup(
      aMigration({ state: 'running', phases: [phase('preflight'), phase('prepare')] }),
      aWorkload({ state: 'migrating' }),
    );
    scriptHappyPath(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.notes?.[0]).toMatch(/picked up again after the previous attempt stopped during 'prepare'/);
    // The dead attempt's page-server is looked for (and killed) before anything starts again.
    const first = shell.calls.findIndex((c) => c.node === 'node-b' && /CRIU_IDLE/.test(c.command));
    const preflight = shell.calls.findIndex((c) => /criu check/.test(c.command));
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
