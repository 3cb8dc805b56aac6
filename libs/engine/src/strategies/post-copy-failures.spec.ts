/**
 * Post-copy's failure paths and a dead worker's recovery: the source stays frozen until the destination has
 * every page; an incomplete restored tree is killed before the source is resumed. Scripted CRIU with this
 * lab's real post-copy figures and failure logs.
 */
import { InMemoryPostCopyTrials } from '@spotlift/store';
import { type ScriptedNodeShell, scriptPostCopyReplay } from '@spotlift/testing';
import {
  LAB_POSTCOPY,
  TestClock,
  criuFixture,
  deadWorkerSetup,
  liveSetup,
  scriptCommon,
} from '../../test/live-harness.js';

const index = (shell: ScriptedNodeShell, node: string, re: RegExp) =>
  shell.calls.findIndex((c) => c.node === node && re.test(c.command));

describe('post-copy failures: the source stays frozen until the destination has everything', () => {
  const setup = () => {
    const clock = new TestClock();
    const trials = new InMemoryPostCopyTrials(() => clock.ms);
    void trials.put(
      { sourceNodeId: 'node-a', destinationNodeId: 'node-b', ok: true, at: clock.now().toISOString(), durationMs: 800 },
      60_000,
    );
    return liveSetup({ migration: { strategy: 'post-copy' }, trials, clock });
  };

  it('pages stop arriving after the restored tree ran: it is killed first, then the source resumed; the record says what was lost', async () => {
    const { shell, engine, workloads } = setup();
    shell.on({
      node: 'node-b',
      match: /PAGES_END/,
      reply: {
        stdout:
          'PAGES_END 2000900000000\nTRANSFERRED 1200/67428\nERR (00.541804) Error (criu/page-xfer.c:1660): page-xfer: Remote side closed connection\n',
      },
    });
    shell.on({
      node: 'node-a',
      match: /tail -n \d+ \S*\/src\/dump\.log/,
      reply: { stdout: criuFixture('logs/dump-lazy-pages-tee-eperm.log').toString() },
    });
    scriptPostCopyReplay(shell, LAB_POSTCOPY);
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(
      /^post-copy could not finish: transferred 1200\/67428; criu lazy-pages failed on node-b/,
    );
    expect(m.rollbackReason).toMatch(/ran for 560 ms without all of its memory, so it is incomplete and is killed/);
    expect(m.rollbackReason).toMatch(/the source says: .*fs\.pipe-max-size/);
    expect(m.downtimeMs).toBeGreaterThan(0);
    const killRestored = index(shell, 'node-b', /kill -KILL \$\(tree 777\)/);
    const stopDaemon = index(shell, 'node-b', /lazy-pages\.pid.*kill -KILL/);
    const stopDump = index(shell, 'node-a', /LAZY_STOPPED/);
    const resume = index(shell, 'node-a', /kill -CONT/);
    expect(killRestored).toBeGreaterThanOrEqual(0);
    expect(killRestored).toBeLessThan(stopDaemon);
    expect(stopDaemon).toBeLessThan(stopDump);
    expect(stopDump).toBeLessThan(resume);
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('the lazy dump fails before serving (pid gone): nothing restored, the source is checked and resumed', async () => {
    const { shell, engine } = setup();
    shell
      .on({
        node: 'node-a',
        match: /Starting lazy pages server/,
        reply: { code: 1, stdout: 'LAZY_FAILED 1 2000100000000\n' },
      })
      .on({
        node: 'node-a',
        match: /tail -n \d+ \S*\/src\/dump\.log/,
        reply: { stdout: criuFixture('logs/dump-pid-gone.log').toString() },
      });
    scriptPostCopyReplay(shell, LAB_POSTCOPY);
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump --lazy-pages failed on node-a \(pid_gone\)/);
    expect(shell.ran('node-b', /criu (lazy-pages|restore)/)).toEqual([]);
    expect(shell.ran('node-a', /kill -CONT/)).toHaveLength(1);
  });

  it('a dead worker during the pages phase: recovery waits for the pages, then adopts and commits', async () => {
    const { shell, engine } = deadWorkerSetup('post-copy', [
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'pages',
    ]);
    scriptPostCopyReplay(shell, LAB_POSTCOPY);
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    // The daemon was waited for before anything that kills CRIU daemons ran.
    expect(index(shell, 'node-b', /PAGES_END/)).toBeLessThan(index(shell, 'node-b', /CRIU_IDLE/));
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toHaveLength(1);
  });

  it('a dead worker and pages that never all arrived: recovery kills the incomplete copy and resumes the source', async () => {
    const { shell, engine } = deadWorkerSetup('post-copy', [
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'pages',
    ]);
    shell.on({
      node: 'node-b',
      match: /PAGES_END/,
      reply: { stdout: 'PAGES_END 2000900000000\nTRANSFERRED 10/67428\n' },
    });
    scriptPostCopyReplay(shell, LAB_POSTCOPY);
    scriptCommon(shell);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/lazily restored pages did not all arrive/);
    expect(index(shell, 'node-b', /kill -KILL \$\(tree 777\)/)).toBeLessThan(index(shell, 'node-a', /kill -CONT/));
    expect(shell.ran('node-a', /kill -KILL \$\(tree 4242\)/)).toEqual([]);
  });
});
