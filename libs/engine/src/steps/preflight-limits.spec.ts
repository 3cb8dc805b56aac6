/**
 * Preflight's destination limits at their edges (mutation testing found them unpinned): the memory and disk a
 * workload needs include the headroom, so a destination with a little more than the RSS but less than RSS plus
 * headroom is refused; a little more than that passes. Also a cpuinfo image that is not base64. Over the fake
 * node operations (fakeEngineKit): the destination's figures are preflightAnswer's typed values.
 */
import { aNode, type FakeProcessOps, preflightAnswer } from '@spotlift/testing';
import { fakeEngineKit, scriptHappyOps } from '@spotlift/testing';
import { checkCriuVersions } from './preflight-checks.js';

// The happy path's tree is 65,536 KiB resident; the default headroom is 10 %: 72,090 KiB needed.
const RSS_KB = 65_536;
const NEEDED_KB = RSS_KB * 1.1;
const DISK_PLENTY = 50 * 2 ** 30;

function engineKit(script?: (ops: FakeProcessOps) => unknown) {
  const kit = fakeEngineKit();
  script?.(kit.ops);
  scriptHappyOps(kit.ops, kit.streams);
  /** The operations of `names` that ran on `node`. */
  const did = (node: string, ...names: string[]) =>
    kit.ops.calls.filter((c) => c.node === node && names.includes(c.op)).map((c) => c.op);
  return { ...kit, did };
}
const said = (code: number, stdout = '', stderr = '') => ({ code, stdout, stderr });

const run = async (memKb: number, diskBytes = DISK_PLENTY) => {
  const kit = engineKit((ops) => ops.on('memoryAndDisk', preflightAnswer({ memKb, diskBytes })));
  const m = await kit.engine.run('mig-1');
  return { m, kit };
};

describe('preflight limits at their edges', () => {
  it('memory: more than the RSS but short of the headroom is refused before anything is frozen', async () => {
    const { m, kit } = await run(Math.floor(RSS_KB * 1.05));
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 67 MiB available, the workload needs 70 MiB');
    expect(kit.did('node-a', 'dump', 'killTree', 'resumeTree')).toEqual([]);
  });

  it('memory: just above RSS plus headroom passes', async () => {
    const { m } = await run(Math.ceil(NEEDED_KB) + 1);
    expect(m.state).toBe('completed');
  });

  it('disk: room for the RSS but not the headroom is refused; just above it passes', async () => {
    const short = await run(8_000_000, Math.floor(RSS_KB * 1024 * 1.05));
    expect(short.m.state).toBe('failed');
    expect(short.m.error).toBe('node-b has 67 MiB free under /var/lib/spotlift/images, the images need about 70 MiB');
    const enough = await run(8_000_000, Math.ceil(NEEDED_KB * 1024) + 1);
    expect(enough.m.state).toBe('completed');
  });

  it('a memory figure that cannot be read counts as none (never assumed to be enough)', async () => {
    const kit = engineKit((ops) => ops.on('memoryAndDisk', preflightAnswer({ memKb: null })));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 0 MiB available, the workload needs 70 MiB');
  });

  it('a cpuinfo image that is not base64 is refused like a missing one', async () => {
    const kit = engineKit((ops) =>
      ops.on('cpuinfoDumpAndRead', said(0, 'criu: command not found!\n'), { node: 'node-a' }),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('criu cpuinfo dump on node-a wrote no cpuinfo.img');
    expect(kit.did('node-b', 'cpuinfoWriteAndCheck')).toEqual([]);
  });

  it('a cpuinfo dump that fails is explained from its log, or from stderr when it wrote none', async () => {
    const dumpLog = {
      node: 'node-a',
      when: (_n: unknown, path: string, lines?: number) => /\/cpuinfo-dump\.log$/.test(path) && lines === 100,
    };
    const withLog = engineKit((ops) =>
      ops
        .on('cpuinfoDumpAndRead', said(1, '', 'ignored'), { node: 'node-a' })
        .on('tail', '(00.002) Error (criu/cpu.c:412): cpu: Unable to read cpuinfo\n', dumpLog),
    );
    const a = await withLog.engine.run('mig-1');
    expect(a.state).toBe('failed');
    expect(a.error).toMatch(/^criu cpuinfo dump failed on node-a .*Unable to read cpuinfo/);
    expect(a.error).not.toMatch(/ignored/);

    const noLog = engineKit((ops) =>
      ops
        .on('cpuinfoDumpAndRead', said(1, '', '(00.001) Error (criu/cpu.c:99): cpu: from stderr\n'), {
          node: 'node-a',
        })
        .on('tail', '', dumpLog),
    );
    const b = await noLog.engine.run('mig-1');
    expect(b.state).toBe('failed');
    expect(b.error).toMatch(/^criu cpuinfo dump failed on node-a .*cpu: from stderr/);
    expect(noLog.did('node-b', 'cpuinfoWriteAndCheck')).toEqual([]);
  });

  it('a destination whose CRIU does not pass `criu check` is refused with CRIU’s own words', async () => {
    const kit = engineKit((ops) =>
      ops.on(
        'memoryAndDisk',
        preflightAnswer({
          criu: { fails: "Error (criu/cr-check.c:1290): Kernel doesn't support PTRACE_O_SUSPEND_SECCOMP" },
        }),
        { node: 'node-b' },
      ),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/^CRIU does not work on node-b: Error \(criu\/cr-check\.c:1290\)/);
  });

  it('CRIU versions: the same version passes, an unparsable one is refused with both versions named', () => {
    const withVersion = (id: string, v: string) =>
      aNode(id, { probe: { probedAt: '', criuOk: true, criuVersion: v, features: {} } });
    expect(() => checkCriuVersions(withVersion('node-a', '4.2.1'), withVersion('node-b', '4.2.1'))).not.toThrow();
    expect(() => checkCriuVersions(withVersion('node-a', '4.2.1'), withVersion('node-b', 'banana'))).toThrow(
      /cannot compare CRIU versions 4\.2\.1 \(node-a\) and banana \(node-b\)/,
    );
    expect(() => checkCriuVersions(aNode('node-a', { probe: undefined }), withVersion('node-b', '4.2.1'))).toThrow(
      /the CRIU version of node-a is unknown/,
    );
  });
});
