/**
 * Bad input from the nodes is answered, never obeyed: stats images that are corrupt, truncated or absurd
 * do not fail a migration that already moved (downtime falls back to node timestamps), and CRIU failing
 * with each common error class (real logs from libs/criu/test/fixtures/logs) ends the job with a reason
 * that names the class. Over the fake node operations (fakeEngineKit): the nodes answer by operation name.
 */
import { criuFixture, fakeEngineKit, scriptHappyOps } from '@spotlift/testing';

function engineKit() {
  const kit = fakeEngineKit();
  const did = (node: string, names: RegExp) =>
    kit.ops.sequence().filter((c) => c.endsWith(`@${node}`) && names.test(c.split('@')[0]!));
  return { ...kit, did, happy: () => scriptHappyOps(kit.ops, kit.streams) };
}
type Kit = ReturnType<typeof engineKit>;
const failed = (code: number) => ({ code, stdout: '', stderr: '', startNs: 1n, endNs: 2n });
/** readFile of `name` in the job's directory on `node`. */
const statsOf = (name: string) => ({ when: (_n: unknown, path: string) => path.endsWith(`/${name}`) });
const realDump = criuFixture('images/page-server/stats-dump');
// Node clocks of the scripted run: dump 1000.000 s -> 1001.000 s, restore ends 1001.300 s.
const FROM_DUMP_START_MS = 1_300;

describe('stats-dump that cannot be trusted', () => {
  it.each([
    ['corrupt (random bytes)', Buffer.from('this is not a CRIU image at all, just bytes')],
    ['truncated (header and half the payload)', realDump.subarray(0, 30)],
    ['empty', Buffer.alloc(0)],
    ['of the wrong kind (stats-restore)', criuFixture('images/page-server/stats-restore')],
  ])('%s: the job completes, the problem is recorded, downtime comes from node timestamps', async (_what, bytes) => {
    const kit = engineKit();
    // An empty file reads as none (readFile: no bytes, no file).
    kit.ops.on('readFile', bytes.length ? bytes : undefined, { node: 'node-a', ...statsOf('stats-dump') });
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.criu.dump).toBeUndefined();
    expect(m.statsProblem).toMatch(
      bytes.length ? /^stats-dump on node-a is unreadable: / : /^stats-dump is missing on node-a/,
    );
    expect(m.statsProblem).toMatch(/downtime counts from the dump command start on the source node$/);
    expect(m.downtimeMs).toBe(FROM_DUMP_START_MS);
    expect(m.criu.restore?.restoreTimeUs).toBeGreaterThan(0);
    expect(await kit.workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777 });
  });

  it('a stats-dump whose frozen time is longer than the dump ran (CRIU 4.2.1 after a lazy dump) is not believed', async () => {
    const kit = engineKit();
    const lazy = criuFixture('images/lazy/stats-dump');
    kit.ops.on('readFile', lazy, { node: 'node-a', ...statsOf('stats-dump') });
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.statsProblem).toMatch(/^stats-dump claims a freeze of \d+ µs, longer than the dump command ran/);
    expect(m.downtimeMs).toBe(FROM_DUMP_START_MS);
  });

  it('a node that cannot be read after the commit point leaves the job completed, never rolled back', async () => {
    const kit = engineKit();
    kit.ops.on('readFile', new Error('channel closed'), { node: 'node-b', ...statsOf('stats-restore') });
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.statsProblem).toMatch(/^stats-restore on node-b is unreadable: channel closed/);
    expect(m.criu.dump?.pagesWritten).toBe(2749);
    expect(kit.did('node-a', /^resumeTree$/)).toEqual([]);
  });
});

describe('CRIU failing with each common class', () => {
  const failDump = (kit: Kit, log: string, code = 1) =>
    kit.ops.on('dump', failed(code), { node: 'node-a' }).on('tail', criuFixture(`logs/${log}`).toString(), {
      node: 'node-a',
      when: (_n, path, lines) => path.endsWith('/dump.log') && lines === 200,
    });

  it('pid gone: the workload exited before CRIU could seize it; the job says it runs nowhere', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-pid-gone.log').on('resumeTree', 'gone', { node: 'node-a' });
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /^workload gone: pid 4242 on node-a exited before the migration could move it; nothing was restored and it runs nowhere/,
    );
    expect(m.error).toMatch(/criu dump failed on node-a \(pid_gone\): The process to dump \(pid \d+\) does not exist/);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('gone');
    expect(kit.did('node-b', /^(restore|armRestore\.fire)$/)).toEqual([]);
  });

  it('permission: rolled back, the reason says what privilege CRIU lacks', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-unprivileged.txt');
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump failed on node-a \(permission\): CRIU lacks the privileges it needs/);
    expect(m.rollbackReason).toMatch(/CAP_CHECKPOINT_RESTORE/);
    expect(kit.did('node-a', /^resumeTree$/)).toHaveLength(1);
  });

  it('unsupported feature: rolled back, the reason names the missing kernel feature', async () => {
    const kit = engineKit();
    failDump(kit, 'pre-dump-no-soft-dirty.log', 134);
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(
      /^criu dump failed on node-a \(unsupported_feature\): This kernel has no soft-dirty memory tracking/,
    );
  });

  it('page-server gone mid-dump: rolled back, the reason points at the page-server', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-page-server-refused.log');
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/\(page_server_connection\)/);
  });

  it.each([
    ['restore-address-in-use.log', 'address_in_use'],
    ['restore-pid-collision.log', 'pid_collision'],
    ['restore-empty-dir.log', 'images_missing'],
  ])('restore failing (%s): rolled back with the class %s; nothing restored stays', async (log, kind) => {
    const kit = engineKit();
    kit.ops
      .on('armRestore', (n) => kit.ops.armed('armRestore', n.id, failed(1)), { node: 'node-b' })
      .on('tail', criuFixture(`logs/${log}`).toString(), {
        node: 'node-b',
        when: (_n, path, lines) => path.endsWith('/restore.log') && lines === 200,
      });
    kit.happy();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(new RegExp(`^criu restore failed on node-b \\(${kind}\\)`));
    // Waited for criu on node-b to be gone before resuming the source.
    const idle = kit.ops.sequence().indexOf('waitCriuIdle@node-b');
    const resume = kit.ops.sequence().indexOf('resumeTree@node-a');
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThan(resume);
    expect(kit.did('node-a', /^killTree$/)).toEqual([]);
  });
});
