/**
 * Pre-copy's lazy restore: where both nodes' CRIU restore parent-image pages lazily (`lazy_parent_pages`, the
 * lab's patched build, scripts/lab/criu), the restore leaves the memory to a local lazy-pages daemon and the job
 * completes, and the source dies, only once every page is in; a stock CRIU on either end keeps the eager
 * restore and says why. Scripted CRIU: the feature answers are real outputs of the patched and the stock
 * build; rounds and final dump replay the qemu lab's pre-copy; the fill's figures are the qemu lab's engine run.
 */
import { type ScriptedNodeShell, scriptPreCopyReplay } from '@spotlift/testing';
import {
  QEMU_PRECOPY,
  criuFixture,
  deadWorkerSetup,
  liveSetup,
  scriptCommon,
  scriptSoftDirty,
} from '../../test/live-harness.js';
import type { LiveConfig } from './live-config.js';

const index = (shell: ScriptedNodeShell, node: string, re: RegExp) =>
  shell.calls.findIndex((c) => c.node === node && re.test(c.command));

/** `criu check --feature lazy_parent_pages` as the patched build (true) or stock CRIU 4.2.1 (false) answers. */
function scriptLazyParentPages(shell: ScriptedNodeShell, nodes: Record<string, boolean>): void {
  for (const [node, patched] of Object.entries(nodes)) {
    shell.on({
      node,
      match: /criu check --feature lazy_parent_pages/,
      reply: patched
        ? { stdout: criuFixture('outputs/feature-lazy_parent_pages.txt').toString() }
        : { code: 1, stdout: criuFixture('outputs/feature-lazy_parent_pages-stock.txt').toString() },
    });
  }
}

// The qemu lab's engine run (256 MiB, 16 MiB hot set): restore returned 1.1 s after the dump's start, every
// page in 6.9 s after resume.
const RESTORED = 'RESTORED_PID 777\nSPOTLIFT_TIMES 1100000000000 1100300000000 0\n';
const PAGES_END = 'PAGES_END 1107200000000\nTRANSFERRED 65779/65779\n';

/**
 * The destination's lazy restore, one command: the local daemon, then `restore --lazy-pages`; `pages` is what the
 * daemon's log says at its end.
 */
function scriptLocalFill(shell: ScriptedNodeShell, pages = PAGES_END): void {
  shell
    .on({ node: 'node-b', match: /criu lazy-pages .*criu restore .*--lazy-pages/, reply: { stdout: RESTORED } })
    .on({ node: 'node-b', match: /PAGES_END/, reply: { stdout: pages } });
}

function setup(nodes: Record<string, boolean>, live: Partial<LiveConfig> = {}, pages?: string) {
  const env = liveSetup({ migration: { strategy: 'pre-copy' }, live });
  scriptSoftDirty(env.shell, true);
  scriptLazyParentPages(env.shell, nodes);
  scriptLocalFill(env.shell, pages);
  scriptPreCopyReplay(env.shell, QEMU_PRECOPY.preCopy);
  scriptCommon(env.shell);
  return env;
}

describe("pre-copy's lazy restore", () => {
  it('both nodes patched: restore --lazy-pages with a local daemon; commit only after every page is in', async () => {
    const { shell, engine } = setup({ 'node-a': true, 'node-b': true });
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.strategy).toBe('pre-copy');
    expect(m.precopy).toMatchObject({
      restore: 'lazy',
      restoreReason: 'CRIU on node-a and node-b restores parent pages lazily',
      lazyFill: { lazyPages: 65779, transferred: ['65779/65779'], pagesAfterResumeMs: 6900 },
    });
    // The daemon reads the destination's own images (no page server to pull from); it starts in the restore's
    // own command, armed before the freeze and fired once the image files are there.
    const restore = shell.ran('node-b', /criu restore /);
    expect(restore).toHaveLength(1);
    expect(restore[0]).toMatch(/if \S*criu lazy-pages -D \S*\/mig-1\/dst .*; then \S*criu restore .*--lazy-pages/);
    expect(restore[0]).not.toMatch(/--page-server/);
    expect(index(shell, 'node-b', /criu restore /)).toBeGreaterThan(index(shell, 'node-a', /criu dump -t /));
    expect(m.phases.map((p) => p.name)).toEqual(expect.arrayContaining(['restore', 'verify', 'pages']));
    // The frozen source dies only once the destination has every page.
    const filled = index(shell, 'node-b', /PAGES_END/);
    const killSource = index(shell, 'node-a', /kill -KILL \$\(tree 4242\)/);
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
    const { shell, engine } = setup(nodes);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy?.restore).toBe('eager');
    expect(m.precopy?.restoreReason).toContain(why);
    expect(m.precopy?.lazyFill).toBeUndefined();
    expect(shell.ran('node-b', /criu lazy-pages /)).toEqual([]);
    expect(shell.ran('node-b', /criu restore .*--lazy-pages/)).toEqual([]);
    expect(shell.ran('node-b', /criu restore /)).toHaveLength(1);
  });

  it('a daemon that does not start: restored eagerly at once (the freeze is not wasted), with the reason', async () => {
    const env = liveSetup({ migration: { strategy: 'pre-copy' } });
    scriptSoftDirty(env.shell, true);
    scriptLazyParentPages(env.shell, { 'node-a': true, 'node-b': true });
    env.shell
      .on({
        node: 'node-b',
        match: /criu lazy-pages .*criu restore .*--lazy-pages/,
        reply: { code: 1, stdout: 'LAZY_DAEMON_FAILED\nSPOTLIFT_TIMES 1100000000000 1100100000000 1\n' },
      })
      .on({
        node: 'node-b',
        match: /tail -n \d+ \S*\/lazy-pages\.log/,
        reply: { stdout: 'Error (criu/uffd.c:1416): uffd: Lazy pages are not available\n' },
      });
    scriptPreCopyReplay(env.shell, QEMU_PRECOPY.preCopy);
    scriptCommon(env.shell);
    const m = await env.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy?.restore).toBe('eager');
    expect(m.precopy?.restoreReason).toMatch(
      /^the lazy-pages daemon did not start, so every page was copied before resume: criu lazy-pages failed on node-b/,
    );
    expect(m.precopy?.lazyFill).toBeUndefined();
    // whatever the daemon left was stopped, then the plain restore ran
    const failed = index(env.shell, 'node-b', /LAZY_DAEMON_FAILED/);
    const stop = index(env.shell, 'node-b', /lazy-pages\.pid.*kill -KILL/);
    const eager = env.shell.calls.findIndex(
      (c) => c.node === 'node-b' && /criu restore /.test(c.command) && !/--lazy-pages/.test(c.command),
    );
    expect(failed).toBeGreaterThanOrEqual(0);
    expect(stop).toBeGreaterThan(failed);
    expect(eager).toBeGreaterThan(stop);
  });

  it('lazyRestore off in the config: eager, without asking the nodes', async () => {
    const { shell, engine } = setup({ 'node-a': true, 'node-b': true }, { lazyRestore: false });
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.precopy).toMatchObject({ restore: 'eager', restoreReason: 'lazyRestore is off in the live config' });
    expect(shell.ran('node-a', /lazy_parent_pages/)).toEqual([]);
    expect(shell.ran('node-b', /criu lazy-pages /)).toEqual([]);
  });

  it('the fill stops half way: the restored tree is killed, then the daemon, then the source resumed', async () => {
    const { shell, engine, workloads } = setup(
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
    const killRestored = index(shell, 'node-b', /kill -KILL \$\(tree 777\)/);
    const stopDaemon = index(shell, 'node-b', /lazy-pages\.pid.*kill -KILL/);
    const resume = index(shell, 'node-a', /kill -CONT/);
    expect(killRestored).toBeGreaterThanOrEqual(0);
    expect(killRestored).toBeLessThan(stopDaemon);
    expect(stopDaemon).toBeLessThan(resume);
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('a dead worker while the daemon fills: recovery waits for it, then adopts the restored tree', async () => {
    const { shell, engine } = deadWorkerSetup('pre-copy', [
      'preflight',
      'prepare',
      'precopy',
      'dump',
      'transfer',
      'restore',
      'verify',
      'pages',
    ]);
    shell.on({ node: 'node-b', match: /DAEMON_STARTED/, reply: { stdout: 'DAEMON_STARTED\n' } });
    scriptLocalFill(shell);
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(index(shell, 'node-b', /PAGES_END/)).toBeLessThan(index(shell, 'node-b', /CRIU_IDLE/));
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toHaveLength(1);
  });

  it('a dead worker and a fill that never finished: recovery kills the restored tree and resumes the source', async () => {
    const { shell, engine } = deadWorkerSetup('pre-copy', [
      'preflight',
      'prepare',
      'precopy',
      'dump',
      'transfer',
      'restore',
      'verify',
      'pages',
    ]);
    shell.on({ node: 'node-b', match: /DAEMON_STARTED/, reply: { stdout: 'DAEMON_STARTED\n' } });
    scriptLocalFill(shell, 'PAGES_END 1103000000000\nTRANSFERRED 10/65779\n');
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/lazily restored pages did not all arrive/);
    expect(index(shell, 'node-b', /kill -KILL \$\(tree 777\)/)).toBeLessThan(index(shell, 'node-a', /kill -CONT/));
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toEqual([]);
  });
});
