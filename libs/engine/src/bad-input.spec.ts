/**
 * Bad input from the nodes is answered, never obeyed: stats images that are corrupt, truncated or absurd
 * do not fail a migration that already moved (downtime falls back to node timestamps), and CRIU failing
 * with each common error class (real logs from libs/criu/test/fixtures/logs) ends the job with a reason
 * that names the class.
 */
import { criuFixture, engineKit, scriptHappyPath } from '@spotlift/testing';

const b64 = (buf: Buffer) => buf.toString('base64');
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
    kit.shell.on({ node: 'node-a', match: /base64 -w0 .*stats-dump/, reply: { stdout: b64(bytes) } });
    scriptHappyPath(kit.shell);
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
    kit.shell.on({ node: 'node-a', match: /base64 -w0 .*stats-dump/, reply: { stdout: b64(lazy) } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.statsProblem).toMatch(/^stats-dump claims a freeze of \d+ µs, longer than the dump command ran/);
    expect(m.downtimeMs).toBe(FROM_DUMP_START_MS);
  });

  it('a node that cannot be read after the commit point leaves the job completed, never rolled back', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-b', match: /base64 -w0 .*stats-restore/, reply: () => new Error('channel closed') });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.statsProblem).toMatch(/^stats-restore on node-b is unreadable: channel closed/);
    expect(m.criu.dump?.pagesWritten).toBe(2749);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toEqual([]);
  });
});

describe('CRIU failing with each common class', () => {
  const failDump = (kit: ReturnType<typeof engineKit>, log: string, code = 1) =>
    kit.shell.on({ node: 'node-a', match: /criu dump/, reply: { code, stdout: `SPOTLIFT_TIMES 1 2 ${code}\n` } }).on({
      node: 'node-a',
      match: /tail -n 200 .*dump\.log/,
      reply: { stdout: criuFixture(`logs/${log}`).toString() },
    });

  it('pid gone: the workload exited before CRIU could seize it; the job says it runs nowhere', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-pid-gone.log').on({ node: 'node-a', match: /kill -CONT/, reply: { stdout: 'STATE gone\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(
      /^workload gone: pid 4242 on node-a exited before the migration could move it; nothing was restored and it runs nowhere/,
    );
    expect(m.error).toMatch(/criu dump failed on node-a \(pid_gone\): The process to dump \(pid \d+\) does not exist/);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('gone');
    expect(kit.shell.ran('node-b', /criu restore/)).toEqual([]);
  });

  it('permission: rolled back, the reason says what privilege CRIU lacks', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-unprivileged.txt');
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump failed on node-a \(permission\): CRIU lacks the privileges it needs/);
    expect(m.rollbackReason).toMatch(/CAP_CHECKPOINT_RESTORE/);
    expect(kit.shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
  });

  it('unsupported feature: rolled back, the reason names the missing kernel feature', async () => {
    const kit = engineKit();
    failDump(kit, 'pre-dump-no-soft-dirty.log', 134);
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(
      /^criu dump failed on node-a \(unsupported_feature\): This kernel has no soft-dirty memory tracking/,
    );
  });

  it('page-server gone mid-dump: rolled back, the reason points at the page-server', async () => {
    const kit = engineKit();
    failDump(kit, 'dump-page-server-refused.log');
    scriptHappyPath(kit.shell);
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
    kit.shell.on({ node: 'node-b', match: /criu restore/, reply: { code: 1, stdout: 'SPOTLIFT_TIMES 1 2 1\n' } }).on({
      node: 'node-b',
      match: /tail -n 200 .*restore\.log/,
      reply: { stdout: criuFixture(`logs/${log}`).toString() },
    });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(new RegExp(`^criu restore failed on node-b \\(${kind}\\)`));
    // Waited for criu on node-b to be gone before resuming the source.
    const idle = kit.shell.calls.findIndex((c) => c.node === 'node-b' && /CRIU_IDLE/.test(c.command));
    const resume = kit.shell.calls.findIndex((c) => c.node === 'node-a' && /kill -CONT/.test(c.command));
    expect(idle).toBeGreaterThanOrEqual(0);
    expect(idle).toBeLessThan(resume);
    expect(kit.shell.ran('node-a', /kill -KILL/)).toEqual([]);
  });
});
