/**
 * The live-migration scenarios (libs/engine/test/scenarios/live-migration.scenarios.json) replayed against the
 * fake node operations answering with figures captured from real runs: pre-copy rounds from the qemu lab's
 * Debian kernel (soft-dirty on), post-copy from this machine's lab. The qemu lab runs the same scenarios for
 * real; here they pin the engine's decisions (rounds, why they stopped, parent links on both sides). The image
 * streams (tar) still run through the real DirectoryStreamer over a scripted shell.
 */
import { InMemoryPostCopyTrials } from '@spotlift/store';
import { FakeProcessOps } from '@spotlift/testing';
import {
  LAB_POSTCOPY,
  QEMU_PRECOPY,
  SCENARIOS,
  TestClock,
  liveSetup,
  scriptCommonOps,
  scriptPostCopyReplayOps,
  scriptPreCopyReplayOps,
  scriptSoftDirtyOps,
} from '../../test/live-harness.js';

/**
 * The image directory (relative to the job's `side` directory) and parent link of each operation on `node` that
 * names a parent, in call order: pre-dumps, dumps and lazy dumps on the source, page-servers on the destination.
 */
function parentLinks(ops: FakeProcessOps, node: string, side: 'src' | 'dst'): { dir: string; parent: string }[] {
  const out: { dir: string; parent: string }[] = [];
  for (const c of ops.calls.filter((x) => x.node === node)) {
    const a = c.args;
    const [dir, prev] =
      c.op === 'preDump' || c.op === 'lazyDumpStart'
        ? [a[1], a[c.op === 'preDump' ? 2 : 3]]
        : c.op === 'dump'
          ? [a[1], (a[3] as { prev?: string }).prev]
          : c.op === 'startPageServerWithParent'
            ? [a[0], a[2]]
            : [undefined, undefined];
    const rel = new RegExp(`/mig-1/${side}(/(round-\\d+))?$`).exec(String(dir));
    if (rel && typeof prev === 'string') out.push({ dir: rel[2] ?? '.', parent: prev });
  }
  return out;
}

describe.each(SCENARIOS)('scenario: $name', (s) => {
  async function run() {
    const clock = new TestClock();
    const trials = new InMemoryPostCopyTrials(() => clock.ms);
    if (s.replay.postCopyTrial) {
      const ok = s.replay.postCopyTrial === 'ok';
      await trials.put(
        { sourceNodeId: 'node-a', destinationNodeId: 'node-b', ok, at: clock.now().toISOString(), durationMs: 900 },
        60_000,
      );
    }
    const ops = new FakeProcessOps();
    const env = liveSetup({
      migration: s.job,
      workload: { rssBytes: s.workload.memMiB * 2 ** 20 },
      live: s.engine,
      trials,
      clock,
      ops,
    });
    scriptSoftDirtyOps(ops, s.replay.softDirty);
    if (s.replay.fixture === 'qemu-precopy.json') scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    scriptPostCopyReplayOps(ops, LAB_POSTCOPY);
    scriptCommonOps(ops, env.shell);
    const m = await env.engine.run('mig-1');
    return { ...env, ops, m };
  }

  it('ends as expected, with the expected rounds and reason', async () => {
    const { m } = await run();
    expect(m.state).toBe(s.expect.state);
    expect(m.strategy).toBe(s.expect.strategy);
    expect(m.requestedStrategy).toBe(s.job.strategy);
    expect(m.fallbacks ?? []).toEqual([]);
    expect(m.rounds?.length ?? 0).toBe(s.expect.rounds);
    if (s.expect.stopReason) expect(m.precopy?.stopReason).toContain(s.expect.stopReason);
    if (s.expect.finalPagesBelowRound1) {
      expect(m.criu.dump!.pagesWritten).toBeLessThan(m.rounds![0]!.pagesWritten * s.expect.finalPagesBelowRound1);
    }
  });

  it('keeps parent links consistent on both sides', async () => {
    const { shell, ops, m } = await run();
    expect(ops.unanswered).toEqual([]);
    const want = s.expect.parentLinks;
    if (m.strategy === 'pre-copy') {
      // Dump side (pre-dump rounds, final dump) and page-server side name the same parents.
      expect(parentLinks(ops, 'node-a', 'src')).toEqual(want);
      expect(parentLinks(ops, 'node-b', 'dst')).toEqual(want);
      // The source's own `parent` link is not copied over the page-server's.
      expect(shell.ran('node-a', /(?:^|; )tar -C .*case "\.\/\$f" in [^)]*\.\/parent[|)]/)).toHaveLength(1);
    } else {
      // Hybrid: rounds are local files with their parent links, copied over as they are; no page-server.
      expect(parentLinks(ops, 'node-a', 'src')).toEqual(want);
      expect(ops.calls.filter((c) => /^startPageServer/.test(c.op))).toEqual([]);
      // pre-dumps into local files: no page-server endpoint (preDump's sixth argument)
      expect(ops.argsOf('preDump', 'node-a').filter((a) => a[4] !== undefined)).toEqual([]);
      for (let n = 1; n <= s.expect.rounds; n++)
        expect(shell.ran('node-a', new RegExp(`(?:^|; )tar -C \\S+/src/round-${n} `))).toHaveLength(1);
      // The final copy leaves the rounds out (already there) but keeps the final images' parent link.
      const final = shell.ran('node-a', /(?:^|; )tar -C \S+\/src /);
      expect(final).toHaveLength(1);
      expect(final[0]).toMatch(/case "\.\/\$f" in [^)]*\.\/round-\*[|)]/);
      expect(final[0]).not.toMatch(/case "\.\/\$f" in [^)]*\.\/parent[|)]/);
      // the final dump is post-copy's lazy one (`criu dump --leave-stopped --lazy-pages`, a golden row)
      expect(ops.argsOf('lazyDumpStart', 'node-a')).toHaveLength(1);
      expect(ops.argsOf('dump', 'node-a')).toEqual([]);
    }
  });

  it('records per-round stats from CRIU and the freeze from node clocks', async () => {
    const { m } = await run();
    expect(m.downtimeMs).toBeGreaterThan(0);
    for (const [i, r] of (m.rounds ?? []).entries()) {
      const captured = QEMU_PRECOPY.preCopy.rounds[i]!.stats;
      expect(r).toMatchObject({
        round: i + 1,
        pagesWritten: captured.pagesWritten,
        pagesSkippedParent: captured.pagesSkippedParent,
      });
      expect(r.bytes).toBe(captured.pagesWritten * 4096);
      expect(r.bandwidthBytesPerSec).toBeGreaterThan(0);
      expect(r.frozenMs).toBeCloseTo(captured.frozenTimeUs / 1000, 3);
    }
    if (m.strategy === 'pre-copy') {
      // Final freeze as CRIU measured it in the qemu lab, next to what the rounds predicted.
      expect(m.precopy!.predictedFinalFreezeMs).toBeGreaterThan(0);
      expect(m.precopy!.finalPagesWritten).toBe(QEMU_PRECOPY.preCopy.final.stats.pagesWritten);
    }
    if (m.strategy !== 'pre-copy') {
      expect(m.postCopy!.allPagesAt).toBeDefined();
      expect(m.postCopy!.transferred).toEqual(LAB_POSTCOPY.transferred);
      // Seized at 81.6 ms, restored tree running at 340 ms after the dump started (the captured run).
      expect(m.downtimeMs).toBeCloseTo(340 - LAB_POSTCOPY.seizedUs / 1000, 3);
    }
  });
});

describe("a job's own maxRounds", () => {
  it('wins over the engine setting: the rounds stop at the job limit and the job says so', async () => {
    const s = SCENARIOS.find((x) => x.job.strategy === 'pre-copy' && x.expect.rounds > 2 && !x.engine.maxRounds)!;
    const ops = new FakeProcessOps();
    const env = liveSetup({
      migration: { ...s.job, maxRounds: 2 },
      workload: { rssBytes: s.workload.memMiB * 2 ** 20 },
      live: { maxRounds: 8 },
      trials: new InMemoryPostCopyTrials(),
      clock: new TestClock(),
      ops,
    });
    scriptSoftDirtyOps(ops, s.replay.softDirty);
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    scriptCommonOps(ops, env.shell);
    const m = await env.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.rounds).toHaveLength(2);
    expect(m.precopy!.stopReason).toMatch(/^round limit \(2\) reached/);
  });
});
