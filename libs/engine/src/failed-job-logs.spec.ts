/**
 * Diagnostics that outlive a failure: a job that did not complete keeps the tails of its CRIU logs before
 * cleanup removes the image directories (and says where), and a phase left open by a dead worker is closed
 * by recovery as interrupted instead of staying open on the record forever. Over the fake node operations
 * (fakeEngineKit): what keepLogs runs (tail -c of each log, old job directories removed) is golden in node-ops.
 */
import { aMigration, aWorkload, type FakeProcessOps } from '@spotlift/testing';
import { aPhase, fakeEngineKit, scriptHappyOps } from '@spotlift/testing';
import { keptLogsDir } from './failed-job-logs.js';
import { closeInterruptedPhases } from './phase-recorder.js';

function engineKit(opts: Parameters<typeof fakeEngineKit>[0] = {}, script?: (ops: FakeProcessOps) => unknown) {
  const kit = fakeEngineKit(opts);
  script?.(kit.ops);
  scriptHappyOps(kit.ops, kit.streams);
  return kit;
}
/** The dump fails with the tree frozen (CRIU's exit 1 after the freeze): the job rolls back. */
const failedDump = (ops: FakeProcessOps) =>
  ops.on('dump', { code: 1, stdout: '', stderr: '', startNs: 1n, endNs: 2n }, { node: 'node-a' });

describe("a failed job's CRIU logs", () => {
  it('are kept on both nodes before the image directories are removed, and the error says where', async () => {
    const kit = engineKit({}, (ops) =>
      failedDump(ops).on('keepLogs', 2, { node: 'node-a' }).on('keepLogs', 0, { node: 'node-b' }),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    const seq = kit.ops.sequence();
    const keep = seq.indexOf('keepLogs@node-a');
    const remove = kit.ops.calls.findIndex(
      (c) => c.op === 'removeDir' && c.node === 'node-a' && c.args[0] === '/var/lib/spotlift/images/mig-1',
    );
    expect(keep).toBeGreaterThanOrEqual(0);
    expect(keep).toBeLessThan(remove);
    // From the job's image directory to its logs directory, the last 256 KiB of each, older ones after 7 days.
    expect(kit.ops.argsOf('keepLogs', 'node-a')).toEqual([
      ['/var/lib/spotlift/images/mig-1', '/var/lib/spotlift/logs/mig-1', 256 * 1024, 7 * 24 * 60],
    ]);
    // Only the node that had logs is named.
    expect(m.keptLogs).toEqual([{ nodeId: 'node-a', dir: '/var/lib/spotlift/logs/mig-1', files: 2 }]);
    expect(m.error).toMatch(
      /criu dump failed on node-a.*; CRIU's logs \(last 256 KiB of each\) kept for 7 days in node-a:\/var\/lib\/spotlift\/logs\/mig-1$/s,
    );
  });

  it('are not copied for a completed job (its images go as before)', async () => {
    const kit = engineKit({}, (ops) => ops.on('keepLogs', 2));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(kit.ops.argsOf('keepLogs')).toEqual([]);
    expect(m.keptLogs).toBeUndefined();
  });

  it('a node that cannot keep them does not stop the cleanup or change the outcome', async () => {
    // keepLogs never throws: a node that could not keep them (its channel closed, no room) gives 0
    const kit = engineKit({}, (ops) => failedDump(ops).on('keepLogs', 0));
    const m = await kit.engine.run('mig-1');
    expect(kit.ops.argsOf('keepLogs')).toHaveLength(2);
    expect(m.state).toBe('rolled_back');
    expect(m.keptLogs).toBeUndefined();
    expect(m.phases.at(-1)).toMatchObject({ name: 'cleanup', ok: true });
  });

  it('live next to the image root', () => {
    expect(keptLogsDir('/var/lib/spotlift/images', 'mig-1')).toBe('/var/lib/spotlift/logs/mig-1');
    expect(keptLogsDir('/srv/images/', 'mig-2')).toBe('/srv/logs/mig-2');
    expect(keptLogsDir('/images', 'mig-3')).toBe('/logs/mig-3');
  });
});

describe('a phase a dead worker left open', () => {
  it('is closed by recovery as interrupted, with an end time; phases that ended are left as they were', async () => {
    const kit = engineKit({
      migration: aMigration({
        state: 'running',
        phases: [aPhase('preflight', true), aPhase('prepare', true), aPhase('dump')],
        updatedAt: '2026-01-01T00:00:02Z',
      }),
      workload: aWorkload({ state: 'migrating', tree: [4242, 4243] }),
    });
    const before = Date.now();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    const dump = m.phases.find((p) => p.name === 'dump')!;
    expect(dump).toMatchObject({ ok: false, interrupted: true });
    expect(Date.parse(dump.endedAt!)).toBeGreaterThanOrEqual(before);
    expect(dump.durationMs).toBe(Date.parse(dump.endedAt!) - Date.parse('2026-01-01T00:00:00Z'));
    expect(dump.detail).toMatch(
      /interrupted: the worker running it stopped \(record last written 2026-01-01T00:00:02Z\)/,
    );
    expect(m.phases.slice(0, 2)).toEqual([aPhase('preflight', true), aPhase('prepare', true)]);
    // Every phase on the record has ended, the new ones of the recovery included.
    expect(m.phases.filter((p) => p.endedAt === undefined)).toEqual([]);
    expect(m.phases.filter((p) => p.interrupted)).toEqual([dump]);
  });

  it('closing touches only open phases and keeps what the phase had said', () => {
    const m = aMigration({
      phases: [aPhase('preflight', true), { ...aPhase('transfer'), detail: '12 MiB sent' }],
      updatedAt: '2026-01-01T00:00:05Z',
    });
    const closed = closeInterruptedPhases(m, new Date('2026-01-01T00:01:00Z'));
    expect(closed.map((p) => p.name)).toEqual(['transfer']);
    expect(m.phases[1]).toMatchObject({
      endedAt: '2026-01-01T00:01:00.000Z',
      durationMs: 60_000,
      ok: false,
      interrupted: true,
      detail: expect.stringMatching(/closed by recovery; 12 MiB sent$/),
    });
    expect(closeInterruptedPhases(m, new Date())).toEqual([]);
  });
});
