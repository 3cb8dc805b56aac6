/**
 * Every refusal of preflight's destination and source checks, one row each, with its words (issue 9: mutation
 * testing found most of preflight-checks.ts reached by no spec). A refusal is a MigrationStepError of phase
 * 'preflight' that says nothing was frozen, so the job fails without a rollback. Called directly over the
 * fake node operations (FakeProcessOps: answers by operation name; what each name runs on a node is golden in
 * node-ops/process/process-ops.golden.spec.ts); the engine specs (preflight*.spec.ts) show the same refusals
 * end a whole job untouched.
 */
import type { NodeRecord, NodeState } from '@spotlift/domain';
import { FakeProcessOps, aNode, aWorkload, inspectionOutput } from '@spotlift/testing';
import type { CommandResult } from '@spotlift/transport';
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  type MigrationContext,
  MigrationStepError,
} from '../engine.types.js';
import type { TreeInfo } from '../node-ops/node-ops.js';
import { parseRootProcess } from '../process-inspection.js';
import {
  checkCpuCompatible,
  checkCriuVersions,
  checkDestinationResources,
  checkDestinationState,
  recentCriuVerdict,
  runningTree,
} from './preflight-checks.js';

/** The refusal's words, after checking it is a preflight refusal from before any freeze; undefined if none. */
async function refusal(check: () => unknown): Promise<string | undefined> {
  try {
    await check();
    return undefined;
  } catch (error) {
    expect(error).toBeInstanceOf(MigrationStepError);
    expect(error).toMatchObject({ phase: 'preflight', beforeFreeze: true });
    return (error as Error).message;
  }
}

const withCriu = (id: string, criuVersion?: string, probedAt = '2026-03-01T11:59:55.000Z'): NodeRecord =>
  aNode(id, { probe: { probedAt, criuOk: true, features: {}, ...(criuVersion ? { criuVersion } : {}) } });

/** A node's answer to a command: exit 0 and nothing on stderr unless said. */
const said = (r: Partial<CommandResult>): CommandResult => ({ code: 0, stdout: '', stderr: '', ...r });

function setUp(
  script: (ops: FakeProcessOps) => unknown,
  over: { workload?: Parameters<typeof aWorkload>[0]; destination?: NodeRecord } = {},
) {
  const fake = new FakeProcessOps();
  script(fake);
  const ctx: MigrationContext = {
    migration: undefined as never,
    workload: aWorkload(over.workload),
    source: aNode('node-a'),
    destination: over.destination ?? aNode('node-b'),
    sourceDir: '/img/mig-1/src',
    destinationDir: '/img/mig-1/dst',
  };
  return { fake, ops: fake.asNodeOps(), ctx };
}

describe('checkDestinationState', () => {
  it.each<[NodeState, string | undefined]>([
    ['ready', undefined],
    ['draining', 'destination node-b is draining; pick a ready node'],
    ['terminating', 'destination node-b is terminating; pick a ready node'],
    ['gone', 'destination node-b is gone; pick a ready node'],
    ['unreachable', 'destination node-b is unreachable; pick a ready node'],
  ])('%s -> %s', async (state, refused) => {
    expect(await refusal(() => checkDestinationState(aNode('node-b', { state })))).toBe(refused);
  });
});

describe('checkCriuVersions', () => {
  const unknown = (id: string) => `the CRIU version of ${id} is unknown (probe it again: POST /nodes/${id}/probe)`;
  it.each<[string, string | undefined, string | undefined, string | undefined]>([
    ['same version', '4.2.1', '4.2.1', undefined],
    ['newer destination', '4.1', '4.2.1', undefined],
    [
      'older destination',
      '4.2.1',
      '4.1',
      'CRIU 4.1 on node-b is older than CRIU 4.2.1 on node-a; an older CRIU may not read newer images: upgrade node-b',
    ],
    ['source unprobed', undefined, '4.2.1', unknown('node-a')],
    ['destination unprobed', '4.2.1', undefined, unknown('node-b')],
    ['neither probed: the source is named', undefined, undefined, unknown('node-a')],
  ])('%s (%s -> %s)', async (_what, src, dst, refused) => {
    expect(await refusal(() => checkCriuVersions(withCriu('node-a', src), withCriu('node-b', dst)))).toBe(refused);
  });

  it.each([
    ['source', aNode('node-a', { probe: undefined }), withCriu('node-b', '4.2.1'), 'node-a'],
    ['destination', withCriu('node-a', '4.2.1'), aNode('node-b', { probe: undefined }), 'node-b'],
  ])('a %s never probed at all is unknown too', async (_which, source, destination, named) => {
    expect(await refusal(() => checkCriuVersions(source, destination))).toBe(unknown(named));
  });

  it('an unparsable version is refused, naming both versions and why', async () => {
    expect(await refusal(() => checkCriuVersions(withCriu('node-a', 'banana'), withCriu('node-b', '4.2.1')))).toMatch(
      /^cannot compare CRIU versions banana \(node-a\) and 4\.2\.1 \(node-b\): \S/,
    );
  });
});

describe('recentCriuVerdict at the edges of its window', () => {
  const NOW = new Date('2026-03-01T12:00:00.000Z');
  it.each<[string, string, number, boolean]>([
    ['probed this very moment, window 60 s', '2026-03-01T12:00:00.000Z', 60_000, true],
    ['probed this very moment, reuse off (0)', '2026-03-01T12:00:00.000Z', 0, false],
    ['probed this very moment, negative window', '2026-03-01T12:00:00.000Z', -1, false],
  ])('%s -> reused: %s', (_what, probedAt, windowMs, reused) => {
    expect(recentCriuVerdict(withCriu('node-b', '4.2.1', probedAt), NOW, windowMs)).toEqual(
      reused ? withCriu('node-b', '4.2.1', probedAt).probe : undefined,
    );
  });
});

describe('runningTree', () => {
  const identity = { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' };
  const inspect = (tree: TreeInfo | undefined) => (ops: FakeProcessOps) =>
    ops.on('inspectTree', tree, { node: 'node-a', when: (_n, pid) => pid === 4242 });
  /** What inspectTree read: the tree and its RSS, the root's identity when the node could read it. */
  const read = (stdout?: string): TreeInfo => {
    const root = stdout === undefined ? undefined : parseRootProcess(stdout, 4242);
    return { pids: [4242, 4243], rssBytes: 102_400, ...(root ? { root } : {}) };
  };
  const bare = read();

  it.each<[string, TreeInfo | undefined, boolean, string | undefined]>([
    ['exited', undefined, true, "workload 'demo' (pid 4242) no longer runs on node-a"],
    [
      'registered with an identity, root unreadable',
      bare,
      true,
      'could not read which process pid 4242 is on node-a (it may have just exited)',
    ],
    ['registered without an identity, root unreadable: node and pid are all it has', bare, false, undefined],
    ['the registered process', read(inspectionOutput({ tree: [4242, 4243] })), true, undefined],
    ['registered without an identity, root readable', read(inspectionOutput({ tree: [4242, 4243] })), false, undefined],
  ])('%s', async (_what, tree, withIdentity, refused) => {
    const { ops, ctx } = setUp(inspect(tree), { workload: withIdentity ? { identity } : {} });
    expect(await refusal(() => runningTree(ops, ctx))).toBe(refused);
  });

  it('returns the tree it read: pids, resident bytes and, when readable, the root', async () => {
    const { ops, ctx } = setUp(inspect(bare));
    expect(await runningTree(ops, ctx)).toEqual({ pids: [4242, 4243], rssBytes: 102_400 });
    const full = setUp(inspect(read(inspectionOutput({ tree: [4242, 4243] }))), { workload: { identity } });
    expect((await runningTree(full.ops, full.ctx)).root?.identity).toEqual(identity);
  });

  it('another process under the pid is refused with what changed', async () => {
    const { ops, ctx } = setUp(inspect(read(inspectionOutput({ startTime: '999999' }))), {
      workload: { identity },
    });
    expect(await refusal(() => runningTree(ops, ctx))).toMatch(
      /^workload 'demo' no longer runs: pid 4242 on node 'node-a' is another process now \(started at tick 999999/,
    );
  });
});

describe('checkDestinationResources', () => {
  const MiB = 2 ** 20;
  const NOW = new Date('2026-03-01T12:00:00.000Z');
  const tree = { pids: [4242], rssBytes: 100 * MiB };
  /** Headroom 0: exactly the RSS is needed, so equality is the edge. */
  const config: EngineConfig = { ...DEFAULT_ENGINE_CONFIG, imageRoot: '/img', memoryHeadroom: 0, probeReuseMs: 0 };
  const answer = (memKb: number | undefined, disk: number | undefined, head = 'Looks good.\n') =>
    head +
    (memKb === undefined ? '' : `MEM_AVAILABLE_KB ${memKb}\n`) +
    (disk === undefined ? '' : `DISK_AVAIL_BYTES ${disk}\n`);
  const check = async (reply: Partial<CommandResult>, over: Partial<EngineConfig> = {}, destination?: NodeRecord) => {
    const { ops, ctx, fake } = setUp(
      (f) => f.on('memoryAndDisk', said(reply), { node: 'node-b', when: (_n, root) => root === '/img' }),
      destination ? { destination } : {},
    );
    let result: string | undefined;
    const refused = await refusal(async () => {
      result = await checkDestinationResources(ops, ctx, tree, { ...config, ...over }, NOW);
    });
    // Whether `criu check` ran with the figures: the golden table shows what each answer's command is.
    return {
      refused,
      result,
      ran: fake.sequence(),
      criuCheck: fake.argsOf('memoryAndDisk').map((a) => a[1].criuCheck),
    };
  };

  it.each<[string, Partial<CommandResult>, Partial<EngineConfig>, string | undefined]>([
    ['exactly the memory and disk needed', { stdout: answer(100 * 1024, 100 * MiB) }, {}, undefined],
    [
      '1 KiB short of memory',
      { stdout: answer(100 * 1024 - 1, 100 * MiB) },
      {},
      'node-b has 100 MiB available, the workload needs 100 MiB',
    ],
    [
      'memory for the RSS but not the headroom',
      { stdout: answer(140 * 1024, 1000 * MiB) },
      { memoryHeadroom: 0.5 },
      'node-b has 140 MiB available, the workload needs 150 MiB',
    ],
    ['memory for RSS and headroom', { stdout: answer(150 * 1024, 150 * MiB) }, { memoryHeadroom: 0.5 }, undefined],
    [
      'no memory figure counts as none',
      { stdout: answer(undefined, 100 * MiB) },
      {},
      'node-b has 0 MiB available, the workload needs 100 MiB',
    ],
    [
      '1 byte short of disk',
      { stdout: answer(100 * 1024, 100 * MiB - 1) },
      {},
      'node-b has 100 MiB free under /img, the images need about 100 MiB',
    ],
    [
      'disk for the RSS but not the headroom',
      { stdout: answer(1000 * 1024, 120 * MiB) },
      { memoryHeadroom: 0.5 },
      'node-b has 120 MiB free under /img, the images need about 150 MiB',
    ],
    [
      'no disk figure',
      { stdout: answer(100 * 1024, undefined) },
      {},
      'could not read the free disk space under /img on node-b',
    ],
    [
      'criu check failed: its stderr, trimmed',
      { code: 1, stdout: answer(100 * 1024, 100 * MiB, ''), stderr: '  Error (criu/cr-check.c:1290): no seccomp\n' },
      {},
      'CRIU does not work on node-b: Error (criu/cr-check.c:1290): no seccomp',
    ],
    [
      'criu check failed, nothing on stderr: its stdout',
      { code: 1, stdout: `Error: from stdout\n${answer(1, 2, '')}` },
      {},
      'CRIU does not work on node-b: Error: from stdout\nMEM_AVAILABLE_KB 1\nDISK_AVAIL_BYTES 2',
    ],
    [
      '"Looks good" on stderr counts',
      { stdout: answer(100 * 1024, 100 * MiB, ''), stderr: 'Looks good.\n' },
      {},
      undefined,
    ],
  ])('%s', async (_what, reply, over, refused) => {
    const r = await check(reply, over);
    expect(r.refused).toBe(refused);
    if (!refused) expect(r.result).toBe('criu check: ran');
    expect(r.ran).toEqual(['memoryAndDisk@node-b']);
    expect(r.criuCheck).toEqual([true]);
  });

  it('a long CRIU complaint is cut to 300 characters', async () => {
    const r = await check({ code: 1, stderr: 'x'.repeat(1000) });
    expect(r.refused).toBe(`CRIU does not work on node-b: ${'x'.repeat(300)}`);
  });

  it('a probe that passed `criu check` 5 s ago stands for it: only memory and disk are read, and said so', async () => {
    const fresh = withCriu('node-b', '4.2.1', '2026-03-01T11:59:55.000Z');
    const r = await check({ stdout: answer(100 * 1024, 100 * MiB, '') }, { probeReuseMs: 60_000 }, fresh);
    expect(r.refused).toBeUndefined();
    expect(r.result).toBe('criu check: the probe of 2026-03-01T11:59:55.000Z (5000 ms old) reused');
    expect(r.ran).toEqual(['memoryAndDisk@node-b']);
    expect(r.criuCheck).toEqual([false]);
  });

  it('a reused probe still refuses a destination short of memory', async () => {
    const fresh = withCriu('node-b', '4.2.1', '2026-03-01T11:59:55.000Z');
    const r = await check({ stdout: answer(1024, 100 * MiB, '') }, { probeReuseMs: 60_000 }, fresh);
    expect(r.refused).toBe('node-b has 1 MiB available, the workload needs 100 MiB');
  });

  it('without probeReuseMs the probe is never reused', async () => {
    const fresh = withCriu('node-b', '4.2.1', '2026-03-01T11:59:55.000Z');
    const r = await check({ stdout: answer(100 * 1024, 100 * MiB) }, { probeReuseMs: undefined }, fresh);
    expect(r.result).toBe('criu check: ran');
    expect(r.criuCheck).toEqual([true]);
  });
});

describe('checkCpuCompatible', () => {
  const IMAGE = Buffer.from('cpuinfo image bytes').toString('base64');
  type Rule = (ops: FakeProcessOps) => unknown;
  const dump =
    (reply: Partial<CommandResult>): Rule =>
    (f) =>
      f.on('cpuinfoDumpAndRead', said(reply), { node: 'node-a' });
  const cpuCheck =
    (reply: Partial<CommandResult>): Rule =>
    (f) =>
      f.on('cpuinfoWriteAndCheck', said(reply), { node: 'node-b' });
  /** The last 100 lines of `path` on `node`. */
  const logOf =
    (node: string, path: string, text: string): Rule =>
    (f) =>
      f.on('tail', text, { node, when: (_n, p, lines) => p === path && lines === 100 });
  const run = async (rules: Rule[]) => {
    const { ops, ctx, fake } = setUp((f) => rules.forEach((r) => r(f)));
    const refused = await refusal(() => checkCpuCompatible(ops, ctx, '/img/mig-1'));
    return { refused, fake };
  };

  it('the source’s image goes to the destination’s check, on stdin, into the migration’s directory', async () => {
    const { refused, fake } = await run([dump({ stdout: `${IMAGE}\n` }), cpuCheck({ code: 0 })]);
    expect(refused).toBeUndefined();
    expect(fake.sequence()).toEqual(['cpuinfoDumpAndRead@node-a', 'cpuinfoWriteAndCheck@node-b']);
    expect(fake.argsOf('cpuinfoDumpAndRead')).toEqual([['/img/mig-1/cpuinfo-src']]);
    expect(fake.argsOf('cpuinfoWriteAndCheck')).toEqual([['/img/mig-1/cpuinfo-dst', IMAGE]]);
  });

  it('an image in several lines (base64 wrapped) is still an image', async () => {
    const { refused } = await run([dump({ stdout: 'Y3B1aW5m\nbyBpbWFn\nZQ==\n' }), cpuCheck({ code: 0 })]);
    expect(refused).toBeUndefined();
  });

  it.each([
    ['nothing', ''],
    ['only whitespace', ' \n'],
    ['text before the image', `criu: oops ${IMAGE}`],
    ['text after the image', `${IMAGE} !`],
  ])('a dump that printed %s wrote no image: refused before the destination is asked', async (_what, stdout) => {
    const { refused, fake } = await run([dump({ stdout })]);
    expect(refused).toBe('criu cpuinfo dump on node-a wrote no cpuinfo.img');
    expect(fake.sequence()).toEqual(['cpuinfoDumpAndRead@node-a']);
  });

  it('a failed dump is explained from its log; from stderr when the log is empty', async () => {
    const fromLog = await run([
      dump({ code: 1, stderr: 'stderr words' }),
      logOf(
        'node-a',
        '/img/mig-1/cpuinfo-src/cpuinfo-dump.log',
        '(00.002) Error (criu/cpu.c:412): cpu: Unable to read cpuinfo\n',
      ),
    ]);
    expect(fromLog.refused).toMatch(/^criu cpuinfo dump failed on node-a \(.*Unable to read cpuinfo/);
    expect(fromLog.refused).not.toMatch(/stderr words/);
    expect(fromLog.fake.calls.filter((c) => c.node === 'node-b')).toEqual([]);
    const fromStderr = await run([
      dump({ code: 1, stderr: '(00.001) Error (criu/cpu.c:99): cpu: from stderr\n' }),
      logOf('node-a', '/img/mig-1/cpuinfo-src/cpuinfo-dump.log', ''),
    ]);
    expect(fromStderr.refused).toMatch(/^criu cpuinfo dump failed on node-a \(.*from stderr/);
  });

  it('an incompatible destination CPU is refused with CRIU’s log; with stderr when the log is empty', async () => {
    const fromLog = await run([
      dump({ stdout: IMAGE }),
      cpuCheck({ code: 1, stderr: 'stderr words' }),
      logOf(
        'node-b',
        '/img/mig-1/cpuinfo-dst/cpuinfo-check.log',
        '(00.003) Error (criu/cpu.c:300): cpu: CPU capabilities do not match\n',
      ),
    ]);
    expect(fromLog.refused).toMatch(
      /^the CPU of node-b is not compatible with node-a's: criu cpuinfo check failed on node-b \(.*capabilities do not match/,
    );
    expect(fromLog.refused).not.toMatch(/stderr words/);
    const fromStderr = await run([
      dump({ stdout: IMAGE }),
      cpuCheck({ code: 1, stderr: '(00.003) Error (criu/cpu.c:301): cpu: from stderr\n' }),
      logOf('node-b', '/img/mig-1/cpuinfo-dst/cpuinfo-check.log', ''),
    ]);
    expect(fromStderr.refused).toMatch(/^the CPU of node-b is not compatible with node-a's: .*from stderr/);
  });
});
