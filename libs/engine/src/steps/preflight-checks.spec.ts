/**
 * Preflight reusing a recent probe: `criu check` on the destination is most of the notice-to-first-freeze
 * time, and the node's probe already ran it. A probe that passed it within `probeReuseMs` stands in for it;
 * memory, disk and the CPU check are always done now. Over the fake node operations (fakeEngineKit): what
 * `memoryAndDisk` runs with and without `criu check` is golden in node-ops.
 */
import { aNode, type FakeProcessOps, preflightAnswer } from '@spotlift/testing';
import { fakeEngineKit, scriptHappyOps } from '@spotlift/testing';
import { recentCriuVerdict } from './preflight-checks.js';

const NOW = new Date('2026-03-01T12:00:00.000Z');
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

describe('recentCriuVerdict', () => {
  const probed = (probedAt: string, criuOk = true) =>
    aNode('node-b', { probe: { probedAt, criuOk, criuVersion: '4.2.1', features: {} } });

  it.each([
    ['10 s old, window 60 s', '2026-03-01T11:59:50.000Z', true, 60_000, true],
    ['exactly 60 s old', '2026-03-01T11:59:00.000Z', true, 60_000, true],
    ['61 s old', '2026-03-01T11:58:59.000Z', true, 60_000, false],
    ['fresh but criu check failed', '2026-03-01T11:59:59.000Z', false, 60_000, false],
    ['fresh, reuse turned off', '2026-03-01T11:59:59.000Z', true, 0, false],
    ['from the future (clock skew)', '2026-03-01T12:00:05.000Z', true, 60_000, false],
  ])('%s -> reused: %s', (_what, probedAt, criuOk, windowMs, reused) => {
    expect(recentCriuVerdict(probed(probedAt, criuOk), NOW, windowMs) !== undefined).toBe(reused);
  });

  it('never reuses a node that was not probed', () => {
    expect(recentCriuVerdict(aNode('node-b', { probe: undefined }), NOW, 60_000)).toBeUndefined();
  });
});

describe('preflight with a recent probe of the destination', () => {
  const probedAgo = (ms: number) =>
    aNode('node-b', { probe: { probedAt: ago(ms), criuOk: true, criuVersion: '4.2.1', features: {} } });
  function kitWith(destination: ReturnType<typeof aNode>, script?: (ops: FakeProcessOps) => unknown) {
    const kit = fakeEngineKit({ nodes: [aNode('node-a'), destination], config: { probeReuseMs: 60_000 } });
    script?.(kit.ops);
    scriptHappyOps(kit.ops, kit.streams);
    return kit;
  }
  /** Whether each memory-and-disk read on node-b ran `criu check` first. */
  const criuChecks = (ops: FakeProcessOps) => ops.argsOf('memoryAndDisk', 'node-b').map(([, o]) => o.criuCheck);

  it('fresh probe: no criu check on the destination; memory, disk and the CPU check still run', async () => {
    const kit = kitWith(probedAgo(5_000));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(criuChecks(kit.ops)).toEqual([false]);
    expect(kit.ops.argsOf('cpuinfoWriteAndCheck', 'node-b')).toHaveLength(1);
    expect(m.phases.find((p) => p.name === 'preflight')!.detail).toMatch(
      /^criu check: the probe of .* \(\d+ ms old\) reused$/,
    );
  });

  it('still refuses a destination short of memory when the probe is reused', async () => {
    const kit = kitWith(probedAgo(5_000), (ops) =>
      ops.on('memoryAndDisk', preflightAnswer({ memKb: 1024 }), {
        node: 'node-b',
        when: (_n, _root, o) => !o.criuCheck,
      }),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 1 MiB available, the workload needs 70 MiB');
  });

  it('stale probe: criu check runs on the destination', async () => {
    const kit = kitWith(probedAgo(120_000));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(criuChecks(kit.ops)).toEqual([true]);
    expect(m.phases.find((p) => p.name === 'preflight')!.detail).toBe('criu check: ran');
  });

  it('stale probe and a broken CRIU: fails with CRIU’s words, as before', async () => {
    const kit = kitWith(probedAgo(120_000), (ops) =>
      // CRIU's words on stdout, exit 0: only "Looks good." counts as a pass
      ops.on('memoryAndDisk', { code: 0, stdout: 'Error (criu/cr-check.c): fail\n', stderr: '' }, { node: 'node-b' }),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/^CRIU does not work on node-b: Error \(criu\/cr-check\.c\): fail/);
  });
});
