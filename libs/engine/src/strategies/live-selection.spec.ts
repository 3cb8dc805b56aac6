/**
 * Capability probing, fallback and auto's decision, over the fake node operations answering like real runs: the
 * lazy transfer's failure logs are this machine's real ones (fs.pipe-max-size at its default), pre-copy figures
 * the qemu lab's, post-copy figures this lab's.
 */
import { InMemoryPairLinks } from '@spotlift/store';
import { InMemoryPostCopyTrials } from '@spotlift/store';
import { FakeProcessOps, aWorkload } from '@spotlift/testing';
import {
  LAB_POSTCOPY,
  QEMU_PRECOPY,
  TestClock,
  criuFixture,
  liveSetup as harnessSetup,
  scriptCommonOps,
  scriptPostCopyReplayOps,
  scriptPreCopyReplayOps,
  scriptSoftDirtyOps,
} from '../../test/live-harness.js';
import { DEFAULT_LIVE_CONFIG } from './live-config.js';

const MiB = 2 ** 20;
const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/** The live harness over a fresh FakeProcessOps (`shell` carries the image streams only). */
function liveSetup(opts: Omit<Parameters<typeof harnessSetup>[0] & object, 'ops'> = {}) {
  const ops = new FakeProcessOps();
  return { ops, ...harnessSetup({ ...opts, ops }) };
}
type Env = ReturnType<typeof liveSetup>;
const common = (env: Env) => scriptCommonOps(env.ops, env.shell);
const tree = (ops: FakeProcessOps, rssKb: number) =>
  ops.on('inspectTree', { pids: [4242], rssBytes: rssKb * 1024 }, { node: 'node-a' });

/** The pair's post-copy trial fails the way it does here with fs.pipe-max-size at 1 MiB (real logs). */
function scriptFailingTrial(ops: FakeProcessOps): void {
  ops
    .on('restoreProbe', said('', 1), { node: 'node-b', when: (_n, dir) => /\/trial-/.test(dir) })
    .on('tail', criuFixture('logs/restore-lazy-pages-failed.log').toString(), {
      node: 'node-b',
      when: (_n, path) => /\/trial-\S*\/restore\.log$/.test(path),
    })
    .on('tail', criuFixture('logs/dump-lazy-pages-tee-eperm.log').toString(), {
      node: 'node-a',
      when: (_n, path) => /\/trial-\S*\/dump\.log$/.test(path),
    });
}

describe('post-copy capability: a real trial per pair, cached', () => {
  it('a failed trial makes post-copy fall back to stop-and-copy, says what to change, and is cached', async () => {
    const env = liveSetup({ migration: { strategy: 'post-copy' } });
    const { ops, engine, trials } = env;
    scriptFailingTrial(ops);
    scriptPostCopyReplayOps(ops, LAB_POSTCOPY);
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy); // the stop-and-copy dump's answers
    common(env);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.requestedStrategy).toBe('post-copy');
    expect(m.strategy).toBe('stop-and-copy');
    expect(ops.unanswered).toEqual([]);
    expect(m.fallbacks).toHaveLength(1);
    expect(m.fallbacks![0]).toMatch(
      /^post-copy -> stop-and-copy: the post-copy trial node-a -> node-b at \S+ failed: criu restore --lazy-pages failed on node-b/,
    );
    expect(m.fallbacks![0]).toMatch(/to fix: raise fs\.pipe-max-size on node-a/);
    expect(m.phases[0]).toMatchObject({ name: 'probe', ok: true });
    expect(m.phases[0]!.detail).toMatch(/post-copy trial node-a -> node-b: failed: .*page-pipe|fs\.pipe-max-size/);
    // The probe ran as a namespaced process and was cleaned up on both nodes.
    // (startProbeProcess: `unshare -p -f setsid sh -c`, golden in process-ops.golden.spec.ts)
    expect(ops.argsOf('startProbeProcess', 'node-a')).toHaveLength(1);
    expect(ops.argsOf('killTree', 'node-a').filter(([pid]) => pid === 5555)).toHaveLength(1);
    expect(ops.argsOf('killTree', 'node-b').filter(([pid]) => pid === 888)).toEqual([]);
    const cached = await trials.get('node-a', 'node-b');
    expect(cached).toMatchObject({ ok: false, advice: expect.stringMatching(/sysctl -w fs\.pipe-max-size=268435456/) });
  });

  it('a cached result is used until it expires; then the pair is tried again', async () => {
    const clock = new TestClock();
    const trials = new InMemoryPostCopyTrials(() => clock.ms);
    await trials.put(
      { sourceNodeId: 'node-a', destinationNodeId: 'node-b', ok: true, at: clock.now().toISOString(), durationMs: 800 },
      DEFAULT_LIVE_CONFIG.trialTtlOkMs,
    );
    const first = liveSetup({ migration: { strategy: 'post-copy' }, trials, clock });
    scriptPostCopyReplayOps(first.ops, LAB_POSTCOPY);
    common(first);
    const m = await first.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.phases.some((p) => p.name === 'probe')).toBe(false);
    expect(first.ops.argsOf('startProbeProcess')).toEqual([]);

    clock.ms += DEFAULT_LIVE_CONFIG.trialTtlOkMs + 1;
    const later = liveSetup({ migration: { strategy: 'post-copy' }, trials, clock });
    scriptPostCopyReplayOps(later.ops, LAB_POSTCOPY);
    common(later);
    const m2 = await later.engine.run('mig-1');
    expect(m2.state).toBe('completed');
    expect(m2.phases[0]).toMatchObject({ name: 'probe', detail: expect.stringMatching(/: ok \(/) });
    expect(later.ops.argsOf('startProbeProcess', 'node-a')).toHaveLength(1);
  });

  it('hybrid without a working post-copy falls back to pre-copy; without soft-dirty on to stop-and-copy', async () => {
    const clock = new TestClock();
    const trials = new InMemoryPostCopyTrials(() => clock.ms);
    await trials.put(
      {
        sourceNodeId: 'node-a',
        destinationNodeId: 'node-b',
        ok: false,
        at: clock.now().toISOString(),
        durationMs: 700,
        reason: 'tee EPERM',
        advice: 'raise fs.pipe-max-size on node-a',
      },
      60_000,
    );
    const env = liveSetup({ migration: { strategy: 'hybrid', downtimeBudgetMs: 1500 }, trials, clock });
    const { engine } = env;
    scriptSoftDirtyOps(env.ops, true);
    scriptPreCopyReplayOps(env.ops, QEMU_PRECOPY.preCopy);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'pre-copy', requestedStrategy: 'hybrid' });
    expect(m.fallbacks).toEqual([
      expect.stringMatching(
        /^hybrid -> pre-copy: the post-copy trial .* failed: tee EPERM; to fix: raise fs\.pipe-max-size on node-a$/,
      ),
    ]);

    const none = liveSetup({ migration: { strategy: 'hybrid' }, trials, clock });
    scriptSoftDirtyOps(none.ops, false);
    scriptPreCopyReplayOps(none.ops, QEMU_PRECOPY.preCopy);
    common(none);
    const m2 = await none.engine.run('mig-1');
    expect(m2.strategy).toBe('stop-and-copy');
    expect(m2.fallbacks).toEqual([
      expect.stringMatching(/^hybrid -> pre-copy: node-a lacks mem_dirty_track .*Dirty tracking is OFF/),
      expect.stringMatching(/^pre-copy -> stop-and-copy: node-a lacks mem_dirty_track/),
    ]);
  });
});

describe('pre-copy fallback at run time', () => {
  it('a pre-dump that crashes (BUG at mem.c, real log) falls back to stop-and-copy; the round page-server is stopped', async () => {
    const env = liveSetup({ migration: { strategy: 'pre-copy' } });
    const { ops, engine, workloads } = env;
    scriptSoftDirtyOps(ops, true); // the feature probe can say yes and pre-dump still fail
    ops
      .on('preDump', { ...said('', 134), startNs: 1n, endNs: 2n }, { node: 'node-a' })
      .on('tail', criuFixture('logs/pre-dump-no-soft-dirty.log').toString(), {
        node: 'node-a',
        when: (_n, path) => path.endsWith('round-1/pre-dump.log'),
      });
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'stop-and-copy', requestedStrategy: 'pre-copy' });
    expect(ops.unanswered).toEqual([]);
    expect(m.fallbacks).toEqual([
      expect.stringMatching(
        /^pre-copy -> stop-and-copy: criu pre-dump \(round 1\) failed on node-a \(unsupported_feature\): This kernel has no soft-dirty/,
      ),
    ]);
    expect(m.strategyReason).toMatch(/pre-copy could not run \(precopy\), fell back to stop-and-copy/);
    expect(m.phases.map((p) => p.name)).toEqual([
      'preflight',
      'prepare',
      'precopy',
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
      'cleanup',
    ]);
    expect(ops.argsOf('stopPageServer', 'node-b').some(([dir]) => dir.endsWith('/round-1'))).toBe(true);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', state: 'running' });
  });
});

describe('auto: the pair, the memory, the dirty rate, the budget and the deadline decide', () => {
  it('measures the dirty rate where soft-dirty works and picks pre-copy when its final freeze fits', async () => {
    const env = liveSetup({
      migration: { strategy: 'auto', downtimeBudgetMs: 800 },
      workload: aWorkload({ rssBytes: 1024 * MiB }),
    });
    const { ops, engine } = env;
    scriptSoftDirtyOps(ops, true);
    // 16 MiB dirtied in the 500 ms window: 32 MiB/s.
    ops.on('sampleDirtyPages', said('DIRTY_PAGES 4096 500\n'), { node: 'node-a' });
    tree(ops, 1048576);
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'pre-copy', requestedStrategy: 'auto' });
    expect(m.strategyReason).toMatch(
      /^auto: pre-copy: downtime \d+ ms, .* fits the 800 ms budget; simplest that does \(1\.0 GiB, dirty 32 MiB\/s, link 400 MiB\/s\); dirty rate 32 MiB\/s measured/,
    );
    // Pre-copy needs no post-copy: no trial was run for it.
    expect(ops.argsOf('startProbeProcess')).toEqual([]);
    expect(m.rounds!.length).toBeGreaterThanOrEqual(2);
  });

  it('small workload, loose budget: stop-and-copy, with no trial and no sampling', async () => {
    const env = liveSetup({
      migration: { strategy: 'auto', downtimeBudgetMs: 2000 },
      workload: aWorkload({ rssBytes: 64 * MiB }),
    });
    const { ops, engine } = env;
    scriptSoftDirtyOps(ops, false);
    tree(ops, 65536);
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'stop-and-copy' });
    expect(m.strategyReason).toMatch(
      /^auto: stop-and-copy: .* fits the 2\.00 s budget; simplest that does .*dirty rate not measured \(no soft-dirty tracking\)/,
    );
    expect(ops.argsOf('startProbeProcess')).toEqual([]);
    expect(ops.argsOf('sampleDirtyPages')).toEqual([]);
  });

  it("decides with the pair's measured page throughput, and every completed job feeds that measurement", async () => {
    // Assumed 400 MiB/s: 64 MiB stop-and-copy fits 2 s. Measured 20 MiB/s on this pair: it does not.
    const links = new InMemoryPairLinks();
    await links.record({
      sourceNodeId: 'node-a',
      destinationNodeId: 'node-b',
      transport: 'tcp',
      bytesPerSec: 20 * MiB,
      at: '2026-11-28T01:00:00.000Z',
    });
    const env = liveSetup({
      migration: { strategy: 'auto', downtimeBudgetMs: 2000 },
      workload: aWorkload({ rssBytes: 64 * MiB }),
      links,
    });
    const { engine } = env;
    scriptSoftDirtyOps(env.ops, false);
    tree(env.ops, 65536);
    scriptPostCopyReplayOps(env.ops, LAB_POSTCOPY);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'post-copy' });
    expect(m.strategyReason).toMatch(
      /link 20 MiB\/s measured over tcp \(1 migration\(s\), last 2026-11-28T01:00:00\.000Z\)/,
    );

    // A stop-and-copy job on a fresh pair: assumed first, then its own page throughput is what the pair knows.
    const fresh = liveSetup({
      migration: { strategy: 'auto', downtimeBudgetMs: 2000 },
      workload: aWorkload({ rssBytes: 64 * MiB }),
    });
    scriptSoftDirtyOps(fresh.ops, false);
    tree(fresh.ops, 65536);
    scriptPreCopyReplayOps(fresh.ops, QEMU_PRECOPY.preCopy);
    common(fresh);
    const done = await fresh.engine.run('mig-1');
    expect(done).toMatchObject({ state: 'completed', strategy: 'stop-and-copy' });
    expect(done.strategyReason).toMatch(/link assumed 400 MiB\/s \(no migration measured it yet\)/);
    expect(done.throughput?.pagesBytesPerSec).toBeGreaterThan(0);
    expect(await fresh.links.get('node-a', 'node-b', 'tcp')).toMatchObject({
      samples: 1,
      bytesPerSec: done.throughput!.pagesBytesPerSec,
    });
    // Alone on node-a: no node-level figure (the pair's says it all).
    expect(await fresh.links.outbound('node-a', 'tcp')).toBeUndefined();
  });

  it("a completed job says when its pages began: with another transfer leaving its source then, the node's total", async () => {
    const links = new InMemoryPairLinks();
    // A long transfer from node-a to node-c that spans whatever the clock says now.
    await links.record({
      sourceNodeId: 'node-a',
      destinationNodeId: 'node-c',
      transport: 'tcp',
      bytesPerSec: 7 * MiB,
      at: '2100-01-01T00:00:00.000Z',
      startedAt: '2000-01-01T00:00:00.000Z',
    });
    const env = liveSetup({
      migration: { strategy: 'auto', downtimeBudgetMs: 2000 },
      workload: aWorkload({ rssBytes: 64 * MiB }),
      links,
    });
    scriptSoftDirtyOps(env.ops, false);
    tree(env.ops, 65536);
    scriptPreCopyReplayOps(env.ops, QEMU_PRECOPY.preCopy);
    common(env);
    const done = await env.engine.run('mig-1');
    expect(done.state).toBe('completed');
    const total = (await links.outbound('node-a', 'tcp'))!;
    expect(total).toMatchObject({ concurrent: 2, samples: 1 });
    expect(total.bytesPerSec).toBeCloseTo(7 * MiB + done.throughput!.pagesBytesPerSec!, 0);
  });

  it('tight budget without soft-dirty: runs the trial, then post-copy', async () => {
    const env = liveSetup({ migration: { strategy: 'auto', downtimeBudgetMs: 400 } });
    const { engine } = env;
    scriptSoftDirtyOps(env.ops, false);
    scriptPostCopyReplayOps(env.ops, LAB_POSTCOPY);
    common(env);
    const m = await engine.run('mig-1');
    expect(m).toMatchObject({ state: 'completed', strategy: 'post-copy' });
    expect(m.phases[0]).toMatchObject({ name: 'probe', ok: true });
    expect(m.strategyReason).toMatch(/post-copy trial run now: ok/);
    expect(m.fallbacks).toEqual([
      expect.stringMatching(/^pre-copy unavailable/),
      expect.stringMatching(/^hybrid unavailable/),
    ]);
  });
});
