/**
 * Pre-copy's lazy restore: where both nodes' CRIU restore parent-image pages lazily (`lazy_parent_pages`, the
 * lab's patched build, scripts/lab/criu), the restore leaves the memory to a local lazy-pages daemon and the job
 * completes, and the source dies, only once every page is in; a stock CRIU on either end keeps the eager
 * restore and says why. Over the fake node operations (answered by name): the feature answers are real
 * outputs of the patched and the stock build; rounds and final dump replay the qemu lab's pre-copy; the fill's
 * figures are the qemu lab's engine run. The armed lazy restore's command (the local daemon first, then
 * `restore --lazy-pages`, no page server) is golden in node-ops/process/process-ops.golden.spec.ts.
 */
import { FakeProcessOps } from '@spotlift/testing';
import {
  QEMU_PRECOPY,
  criuFixture,
  deadWorkerSetup,
  liveSetup,
  scriptCommonOps,
  scriptFeatureOps,
  scriptPreCopyReplayOps,
  scriptSoftDirtyOps,
} from '../../test/live-harness.js';
import type { LiveConfig } from './live-config.js';

const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/** Where `op` on `node` (with `first` as its first argument after the node, if given) came in the order of calls. */
const index = (ops: FakeProcessOps, op: string, node: string, first?: unknown) =>
  ops.calls.findIndex((c) => c.op === op && c.node === node && (first === undefined || c.args[0] === first));

/** `criu check --feature lazy_parent_pages` as the patched build (true) or stock CRIU 4.2.1 (false) answers. */
function scriptLazyParentPages(ops: FakeProcessOps, nodes: Record<string, boolean>): void {
  for (const [node, patched] of Object.entries(nodes)) {
    const out = criuFixture(`outputs/feature-lazy_parent_pages${patched ? '' : '-stock'}.txt`).toString();
    scriptFeatureOps(ops, node, 'lazy_parent_pages', out, patched ? 0 : 1);
  }
}

// The qemu lab's engine run (256 MiB, 16 MiB hot set): restore returned 1.1 s after the dump's start, every
// page in 6.9 s after resume.
const RESTORED = { ...said('RESTORED_PID 777\n'), startNs: 1_100_000_000_000n, endNs: 1_100_300_000_000n };
const PAGES_END = 'PAGES_END 1107200000000\nTRANSFERRED 65779/65779\n';

/**
 * The destination's lazy restore, one armed command (the local daemon, then `restore --lazy-pages`); `pages` is
 * what the daemon's log says at its end.
 */
function scriptLocalFill(ops: FakeProcessOps, pages = PAGES_END): void {
  ops
    .on('armRestore', (n) => ops.armed('armRestore', n.id, RESTORED), {
      node: 'node-b',
      when: (_n, _dir, o) => o.lazy === true,
    })
    .on('lazyPagesWait', said(pages), { node: 'node-b' })
    .on('lazyPagesStop', said());
}

/** The eager restore (armed, or run after a failed lazy one). */
function scriptEagerRestore(ops: FakeProcessOps): void {
  ops.on('armRestore', (n) => ops.armed('armRestore', n.id, RESTORED), { node: 'node-b' });
}

function setup(nodes: Record<string, boolean>, live: Partial<LiveConfig> = {}, pages?: string) {
  const ops = new FakeProcessOps();
  const env = liveSetup({ migration: { strategy: 'pre-copy' }, live, ops });
  scriptSoftDirtyOps(ops, true);
  scriptLazyParentPages(ops, nodes);
  scriptLocalFill(ops, pages);
  scriptEagerRestore(ops);
  scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
  scriptCommonOps(ops, env.shell);
  return { ops, ...env };
}

/** A dead worker's job, stopped while the daemon fills (every earlier phase done). */
const PAGES_PHASES = ['preflight', 'prepare', 'precopy', 'dump', 'transfer', 'restore', 'verify', 'pages'] as const;

describe("pre-copy's lazy restore", () => {
  it('both nodes patched: restore --lazy-pages with a local daemon; commit only after every page is in', async () => {
    const { ops, engine } = setup({ 'node-a': true, 'node-b': true });
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.unanswered).toEqual([]);
    expect(m.strategy).toBe('pre-copy');
    expect(m.precopy).toMatchObject({
      restore: 'lazy',
      restoreReason: 'CRIU on node-a and node-b restores parent pages lazily',
      lazyFill: { lazyPages: 65779, transferred: ['65779/65779'], pagesAfterResumeMs: 6900 },
    });
    // The daemon reads the destination's own images (no page server to pull from); it starts in the restore's
    // own command, armed before the freeze and fired once the image files are there.
    expect(ops.argsOf('armRestore', 'node-b')).toEqual([
      [expect.stringMatching(/\/mig-1\/dst$/), { lazy: true }, expect.any(Number)],
    ]);
    expect(ops.argsOf('restore', 'node-b')).toEqual([]);
    expect(ops.argsOf('armRestore.fire' as never, 'node-b')).toHaveLength(1);
    expect(index(ops, 'armRestore.fire', 'node-b')).toBeGreaterThan(index(ops, 'dump', 'node-a'));
    expect(m.phases.map((p) => p.name)).toEqual(expect.arrayContaining(['restore', 'verify', 'pages']));
    // The frozen source dies only once the destination has every page.
    const filled = index(ops, 'lazyPagesWait', 'node-b');
    const killSource = index(ops, 'killTree', 'node-a', 4242);
    expect(filled).toBeGreaterThanOrEqual(0);
    expect(filled).toBeLessThan(killSource);
    // Downtime ends when the restored tree runs (the restore's end), not when its memory is all in.
    expect(m.resumedAt).toBe(new Date(1_100_300).toISOString());
    expect(m.precopy?.lazyFill?.allPagesAt).toBe(new Date(1_107_200).toISOString());
  });

  it.each([
    [{ 'node-a': true, 'node-b': false }, 'node-b: stock CRIU (no lazy_parent_pages)'],
    [{ 'node-a': false, 'node-b': true }, 'node-a: stock CRIU (no lazy_parent_pages)'],
  ])('%j: the eager restore, with the node that lacks it named', async (nodes, why) => {
    const { ops, engine } = setup(nodes);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy?.restore).toBe('eager');
    expect(m.precopy?.restoreReason).toContain(why);
    expect(m.precopy?.lazyFill).toBeUndefined();
    // One restore, armed without the daemon (no lazy-pages, no --lazy-pages: the golden table's plain restore).
    expect(ops.argsOf('armRestore', 'node-b')).toEqual([[expect.any(String), { lazy: false }, expect.any(Number)]]);
    expect(ops.argsOf('armRestore.fire' as never, 'node-b')).toHaveLength(1);
    expect(ops.argsOf('restore', 'node-b')).toEqual([]);
    expect(ops.argsOf('lazyPagesDaemon', 'node-b')).toEqual([]);
  });

  it('a daemon that does not start: restored eagerly at once (the freeze is not wasted), with the reason', async () => {
    const ops = new FakeProcessOps();
    const env = liveSetup({ migration: { strategy: 'pre-copy' }, ops });
    scriptSoftDirtyOps(ops, true);
    scriptLazyParentPages(ops, { 'node-a': true, 'node-b': true });
    ops
      .on(
        'armRestore',
        (n) =>
          ops.armed('armRestore', n.id, {
            ...said('LAZY_DAEMON_FAILED\n', 1),
            startNs: 1_100_000_000_000n,
            endNs: 1_100_100_000_000n,
          }),
        { node: 'node-b', when: (_n, _dir, o) => o.lazy === true },
      )
      .on('tail', 'Error (criu/uffd.c:1416): uffd: Lazy pages are not available\n', {
        node: 'node-b',
        when: (_n, path) => path.endsWith('/lazy-pages.log'),
      })
      .on('lazyPagesStop', said());
    scriptPreCopyReplayOps(ops, QEMU_PRECOPY.preCopy);
    scriptCommonOps(ops, env.shell);
    const m = await env.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy?.restore).toBe('eager');
    expect(m.precopy?.restoreReason).toMatch(
      /^the lazy-pages daemon did not start, so every page was copied before resume: criu lazy-pages failed on node-b/,
    );
    expect(m.precopy?.lazyFill).toBeUndefined();
    // whatever the daemon left was stopped, then the plain restore ran
    const failed = index(ops, 'armRestore.fire', 'node-b');
    const stop = index(ops, 'lazyPagesStop', 'node-b');
    const eager = ops.calls.findIndex(
      (c) => c.op === 'restore' && c.node === 'node-b' && !(c.args[1] as { lazyPages?: boolean }).lazyPages,
    );
    expect(failed).toBeGreaterThanOrEqual(0);
    expect(stop).toBeGreaterThan(failed);
    expect(eager).toBeGreaterThan(stop);
  });

  it('lazyRestore off in the config: eager, without asking the nodes', async () => {
    const { ops, engine } = setup({ 'node-a': true, 'node-b': true }, { lazyRestore: false });
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy).toMatchObject({ restore: 'eager', restoreReason: 'lazyRestore is off in the live config' });
    expect(ops.argsOf('checkFeature').filter(([f]) => f === 'lazy_parent_pages')).toEqual([]);
    expect(ops.argsOf('armRestore', 'node-b').filter(([, o]) => o.lazy)).toEqual([]);
    expect(ops.argsOf('lazyPagesDaemon', 'node-b')).toEqual([]);
  });

  it('the fill stops half way: the restored tree is killed, then the daemon, then the source resumed', async () => {
    const { ops, engine, workloads } = setup(
      { 'node-a': true, 'node-b': true },
      {},
      'PAGES_END 1103000000000\nTRANSFERRED 20480/65779\nERR (02.102331) Error (criu/uffd.c:1090): uffd: Lazy pages transfer FAILED\n',
    );
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(
      /^the lazy restore could not fill the memory from node-b's images: transferred 20480\/65779/,
    );
    expect(m.rollbackReason).toMatch(/the source on node-a, frozen since the dump and never resumed, is resumed/);
    expect(m.precopy?.lazyFill).toMatchObject({ lazyPages: 65779, transferred: ['20480/65779'] });
    const killRestored = index(ops, 'killTree', 'node-b', 777);
    const stopDaemon = index(ops, 'lazyPagesStop', 'node-b');
    const resume = index(ops, 'resumeTree', 'node-a');
    expect(killRestored).toBeGreaterThanOrEqual(0);
    expect(killRestored).toBeLessThan(stopDaemon);
    expect(stopDaemon).toBeLessThan(resume);
    expect(index(ops, 'killTree', 'node-a', 4242)).toBe(-1);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('a dead worker while the daemon fills: recovery waits for it, then adopts the restored tree', async () => {
    const ops = new FakeProcessOps();
    const { shell, engine } = deadWorkerSetup('pre-copy', [...PAGES_PHASES], ops);
    ops.on('lazyPagesStarted', said('DAEMON_STARTED\n'), { node: 'node-b' });
    scriptLocalFill(ops);
    scriptCommonOps(ops, shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.unanswered).toEqual([]);
    expect(index(ops, 'lazyPagesWait', 'node-b')).toBeGreaterThanOrEqual(0);
    expect(index(ops, 'lazyPagesWait', 'node-b')).toBeLessThan(index(ops, 'waitCriuIdle', 'node-b'));
    expect(ops.argsOf('killTree', 'node-a')).toEqual([[4242]]);
  });

  it('a dead worker and a fill that never finished: recovery kills the restored tree and resumes the source', async () => {
    const ops = new FakeProcessOps();
    const { shell, engine } = deadWorkerSetup('pre-copy', [...PAGES_PHASES], ops);
    ops.on('lazyPagesStarted', said('DAEMON_STARTED\n'), { node: 'node-b' });
    scriptLocalFill(ops, 'PAGES_END 1103000000000\nTRANSFERRED 10/65779\n');
    scriptCommonOps(ops, shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/lazily restored pages did not all arrive/);
    expect(index(ops, 'killTree', 'node-b', 777)).toBeGreaterThanOrEqual(0);
    expect(index(ops, 'killTree', 'node-b', 777)).toBeLessThan(index(ops, 'resumeTree', 'node-a'));
    expect(index(ops, 'killTree', 'node-a', 4242)).toBe(-1);
  });
});
