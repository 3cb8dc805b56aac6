/**
 * Post-copy's failure paths and a dead worker's recovery: the source stays frozen until the destination has
 * every page; an incomplete restored tree is killed before the source is resumed. Over the fake node
 * operations (answered by name) with this lab's real post-copy figures and failure logs.
 */
import { InMemoryPostCopyTrials } from '@spotlift/store';
import { FakeProcessOps } from '@spotlift/testing';
import {
  LAB_POSTCOPY,
  TestClock,
  criuFixture,
  deadWorkerSetup,
  liveSetup,
  scriptCommonOps,
  scriptPostCopyReplayOps,
} from '../../test/live-harness.js';

const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/** Where `op` on `node` (with `first` as its first argument after the node, if given) came in the order of calls. */
const index = (ops: FakeProcessOps, op: string, node: string, first?: unknown) =>
  ops.calls.findIndex((c) => c.op === op && c.node === node && (first === undefined || c.args[0] === first));

describe('post-copy failures: the source stays frozen until the destination has everything', () => {
  const setup = () => {
    const clock = new TestClock();
    const trials = new InMemoryPostCopyTrials(() => clock.ms);
    void trials.put(
      { sourceNodeId: 'node-a', destinationNodeId: 'node-b', ok: true, at: clock.now().toISOString(), durationMs: 800 },
      60_000,
    );
    const ops = new FakeProcessOps();
    return { ops, ...liveSetup({ migration: { strategy: 'post-copy' }, trials, clock, ops }) };
  };
  const script = (env: { ops: FakeProcessOps; shell: Parameters<typeof scriptCommonOps>[1] }) => {
    scriptPostCopyReplayOps(env.ops, LAB_POSTCOPY);
    scriptCommonOps(env.ops, env.shell);
  };
  const dumpLog = (ops: FakeProcessOps, fixture: string) =>
    ops.on('tail', criuFixture(fixture).toString(), {
      node: 'node-a',
      when: (_n, path) => path.endsWith('/src/dump.log'),
    });

  it('pages stop arriving after the restored tree ran: it is killed first, then the source resumed; the record says what was lost', async () => {
    const env = setup();
    const { ops, engine, workloads } = env;
    ops.on(
      'lazyPagesWait',
      said(
        'PAGES_END 2000900000000\nTRANSFERRED 1200/67428\nERR (00.541804) Error (criu/page-xfer.c:1660): page-xfer: Remote side closed connection\n',
      ),
      { node: 'node-b' },
    );
    dumpLog(ops, 'logs/dump-lazy-pages-tee-eperm.log');
    script(env);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(
      /^post-copy could not finish: transferred 1200\/67428; criu lazy-pages failed on node-b/,
    );
    expect(m.rollbackReason).toMatch(/ran for 560 ms without all of its memory, so it is incomplete and is killed/);
    expect(m.rollbackReason).toMatch(/the source says: .*fs\.pipe-max-size/);
    expect(m.downtimeMs).toBeGreaterThan(0);
    expect(ops.unanswered).toEqual([]);
    const killRestored = index(ops, 'killTree', 'node-b', 777);
    const stopDaemon = index(ops, 'lazyPagesStop', 'node-b');
    const stopDump = index(ops, 'lazyDumpStop', 'node-a');
    const resume = index(ops, 'resumeTree', 'node-a');
    expect(killRestored).toBeGreaterThanOrEqual(0);
    expect(killRestored).toBeLessThan(stopDaemon);
    expect(stopDaemon).toBeLessThan(stopDump);
    expect(stopDump).toBeLessThan(resume);
    expect(index(ops, 'killTree', 'node-a', 4242)).toBe(-1);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', pid: 4242, state: 'running' });
  });

  it('the lazy dump fails before serving (pid gone): nothing restored, the source is checked and resumed', async () => {
    const env = setup();
    const { ops, engine } = env;
    ops.on('lazyDumpStart', said('LAZY_FAILED 1 2000100000000\n', 1), { node: 'node-a' });
    dumpLog(ops, 'logs/dump-pid-gone.log');
    script(env);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/^criu dump --lazy-pages failed on node-a \(pid_gone\)/);
    expect(ops.calls.filter((c) => c.node === 'node-b' && /^(lazyPagesDaemon|restore)$/.test(c.op))).toEqual([]);
    expect(ops.argsOf('resumeTree', 'node-a')).toHaveLength(1);
  });

  it('a dead worker during the pages phase: recovery waits for the pages, then adopts and commits', async () => {
    const ops = new FakeProcessOps();
    const env = deadWorkerSetup(
      'post-copy',
      ['preflight', 'prepare', 'dump', 'transfer', 'restore', 'verify', 'pages'],
      ops,
    );
    script({ ops, shell: env.shell });
    const m = await env.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(ops.unanswered).toEqual([]);
    // The daemon was waited for before anything that kills CRIU daemons ran.
    expect(index(ops, 'lazyPagesWait', 'node-b')).toBeGreaterThanOrEqual(0);
    expect(index(ops, 'lazyPagesWait', 'node-b')).toBeLessThan(index(ops, 'waitCriuIdle', 'node-b'));
    expect(ops.argsOf('killTree', 'node-a')).toEqual([[4242]]);
  });

  it('a dead worker and pages that never all arrived: recovery kills the incomplete copy and resumes the source', async () => {
    const ops = new FakeProcessOps();
    const env = deadWorkerSetup(
      'post-copy',
      ['preflight', 'prepare', 'dump', 'transfer', 'restore', 'verify', 'pages'],
      ops,
    );
    ops.on('lazyPagesWait', said('PAGES_END 2000900000000\nTRANSFERRED 10/67428\n'), { node: 'node-b' });
    script({ ops, shell: env.shell });
    const m = await env.engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/lazily restored pages did not all arrive/);
    expect(index(ops, 'killTree', 'node-b', 777)).toBeGreaterThanOrEqual(0);
    expect(index(ops, 'killTree', 'node-b', 777)).toBeLessThan(index(ops, 'resumeTree', 'node-a'));
    expect(index(ops, 'killTree', 'node-a', 4242)).toBe(-1);
  });
});
