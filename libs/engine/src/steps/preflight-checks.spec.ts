/**
 * Preflight reusing a recent probe: `criu check` on the destination is most of the notice-to-first-freeze
 * time, and the node's probe already ran it. A probe that passed it within `probeReuseMs` stands in for it;
 * memory, disk and the CPU check are always done now.
 */
import { aNode } from '@spotlift/testing';
import { engineKit, scriptHappyPath } from '@spotlift/testing';
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
  /** The memory-and-disk read that replaces `criu check` when the probe is reused. */
  const memoryOnly = { node: 'node-b', match: /^awk .*MemAvailable.*DISK_AVAIL_BYTES/ };

  it('fresh probe: no criu check on the destination; memory, disk and the CPU check still run', async () => {
    const fresh = aNode('node-b', {
      probe: { probedAt: ago(5_000), criuOk: true, criuVersion: '4.2.1', features: {} },
    });
    const kit = engineKit({ nodes: [aNode('node-a'), fresh], config: { probeReuseMs: 60_000 } });
    kit.shell.on({ ...memoryOnly, reply: { stdout: 'MEM_AVAILABLE_KB 8000000\nDISK_AVAIL_BYTES 53687091200\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(kit.shell.ran('node-b', /criu check/)).toEqual([]);
    expect(kit.shell.ran('node-b', memoryOnly.match)).toHaveLength(1);
    expect(kit.shell.ran('node-b', /criu cpuinfo check/)).toHaveLength(1);
    expect(m.phases.find((p) => p.name === 'preflight')!.detail).toMatch(
      /^criu check: the probe of .* \(\d+ ms old\) reused$/,
    );
  });

  it('still refuses a destination short of memory when the probe is reused', async () => {
    const fresh = aNode('node-b', {
      probe: { probedAt: ago(5_000), criuOk: true, criuVersion: '4.2.1', features: {} },
    });
    const kit = engineKit({ nodes: [aNode('node-a'), fresh], config: { probeReuseMs: 60_000 } });
    kit.shell.on({ ...memoryOnly, reply: { stdout: 'MEM_AVAILABLE_KB 1024\nDISK_AVAIL_BYTES 53687091200\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 1 MiB available, the workload needs 70 MiB');
  });

  it('stale probe: criu check runs on the destination', async () => {
    const stale = aNode('node-b', {
      probe: { probedAt: ago(120_000), criuOk: true, criuVersion: '4.2.1', features: {} },
    });
    const kit = engineKit({ nodes: [aNode('node-a'), stale], config: { probeReuseMs: 60_000 } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(kit.shell.ran('node-b', /criu check/)).toHaveLength(1);
    expect(m.phases.find((p) => p.name === 'preflight')!.detail).toBe('criu check: ran');
  });

  it('stale probe and a broken CRIU: fails with CRIU’s words, as before', async () => {
    const stale = aNode('node-b', {
      probe: { probedAt: ago(120_000), criuOk: true, criuVersion: '4.2.1', features: {} },
    });
    const kit = engineKit({ nodes: [aNode('node-a'), stale], config: { probeReuseMs: 60_000 } });
    kit.shell.on({ node: 'node-b', match: /criu check/, reply: { stdout: 'Error (criu/cr-check.c): fail\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/^CRIU does not work on node-b: Error \(criu\/cr-check\.c\): fail/);
  });
});
