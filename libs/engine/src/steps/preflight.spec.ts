/**
 * Preflight: every check fails the job before anything touches the workload, with a reason a person can
 * act on. The CPU check's failure is CRIU's real log from an edited cpuinfo.img (libs/criu fixtures). Over the
 * fake node operations (fakeEngineKit); the cpuinfo commands' text is golden in node-ops.
 */
import { type FakeProcessOps, aNode } from '@spotlift/testing';
import { criuFixture, fakeEngineKit, phaseNames, scriptHappyOps } from '@spotlift/testing';

/** The engine over the fake, `script`'s rules first (the first matching rule answers), then the happy path's. */
function engineKit(opts: Parameters<typeof fakeEngineKit>[0] = {}, script?: (ops: FakeProcessOps) => unknown) {
  const kit = fakeEngineKit(opts);
  script?.(kit.ops);
  scriptHappyOps(kit.ops, kit.streams);
  const did = (node: string, names: RegExp) =>
    kit.ops.sequence().filter((c) => c.endsWith(`@${node}`) && names.test(c.split('@')[0]!));
  return { ...kit, did };
}
const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/** Nothing was done to the workload: no dump, no signal, no page-server, no restore. */
function expectUntouched(kit: ReturnType<typeof engineKit>): void {
  expect(kit.did('node-a', /^(dump|killTree|resumeTree|startPageServer)$/)).toEqual([]);
  expect(kit.did('node-b', /^(startPageServer|restore|armRestore)$/)).toEqual([]);
}
/** Nothing but removing the job's own (absent) image directory ran on any node. */
const nothingRan = (kit: ReturnType<typeof engineKit>) => kit.ops.calls.filter((c) => c.op !== 'removeDir');

describe('preflight', () => {
  it('runs the CPU check the way CRIU compares capability words: dump on the source, check on the destination', async () => {
    const kit = engineKit();
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    // (`--cpu-cap=cpu`, and the image written and checked in one command with its bytes on stdin: golden rows.)
    expect(kit.ops.argsOf('cpuinfoDumpAndRead', 'node-a')).toEqual([['/var/lib/spotlift/images/mig-1/cpuinfo-src']]);
    // cpuinfo.img travels from the source to the destination's directory.
    expect(kit.ops.argsOf('cpuinfoWriteAndCheck', 'node-b')).toEqual([
      ['/var/lib/spotlift/images/mig-1/cpuinfo-dst', Buffer.from('cpuinfo image bytes').toString('base64')],
    ]);
    // Preflight first, then everything else: the check ran before the page-server was started.
    const checkAt = kit.ops.sequence().indexOf('cpuinfoWriteAndCheck@node-b');
    const serverAt = kit.ops.sequence().indexOf('startPageServer@node-b');
    expect(checkAt).toBeGreaterThanOrEqual(0);
    expect(checkAt).toBeLessThan(serverAt);
  });

  it('fails on an incompatible CPU with the class and CRIU’s own line', async () => {
    const kit = engineKit({}, (ops) =>
      ops
        .on('cpuinfoWriteAndCheck', said('', 1), { node: 'node-b' })
        .on('tail', criuFixture('logs/cpuinfo-check-capabilities.log').toString(), {
          node: 'node-b',
          when: (_n, path, lines) => path.endsWith('/cpuinfo-check.log') && lines === 100,
        }),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(phaseNames(m)).toEqual(['preflight:fail', 'cleanup:ok']);
    expect(m.error).toMatch(
      /^the CPU of node-b is not compatible with node-a's: criu cpuinfo check failed on node-b \(cpu_incompatible\)/,
    );
    expect(m.error).toMatch(/CPU capabilities do not match run time/);
    expectUntouched(kit);
    expect((await kit.workloads.get('wl-1'))!.state).toBe('running');
  });

  it('fails when the source cannot describe its CPU', async () => {
    const kit = engineKit({}, (ops) => ops.on('cpuinfoDumpAndRead', said(''), { node: 'node-a' }));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('criu cpuinfo dump on node-a wrote no cpuinfo.img');
    expectUntouched(kit);
  });

  it('refuses a destination whose CRIU is older than the source’s', async () => {
    const old = aNode('node-b');
    old.probe = { ...old.probe!, criuVersion: '4.1.1' };
    const kit = engineKit({ nodes: [aNode('node-a'), old] });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      'CRIU 4.1.1 on node-b is older than CRIU 4.2.1 on node-a; an older CRIU may not read newer images: upgrade node-b',
    );
    // Decided from the probes alone: not even the workload was inspected.
    expect(nothingRan(kit)).toEqual([]);
  });

  it('accepts a newer destination CRIU, and refuses an unprobed one', async () => {
    const newer = aNode('node-b');
    newer.probe = { ...newer.probe!, criuVersion: '4.3' };
    const ok = engineKit({ nodes: [aNode('node-a'), newer] });
    expect((await ok.engine.run('mig-1')).state).toBe('completed');

    const unprobed = aNode('node-b');
    delete unprobed.probe;
    const kit = engineKit({ nodes: [aNode('node-a'), unprobed] });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/the CRIU version of node-b is unknown \(probe it again: POST \/nodes\/node-b\/probe\)/);
  });

  it('fails when the destination lacks disk for the images', async () => {
    const kit = engineKit({}, (ops) =>
      ops.on('memoryAndDisk', said('Looks good.\nMEM_AVAILABLE_KB 8000000\nDISK_AVAIL_BYTES 10485760\n')),
    );
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 10 MiB free under /var/lib/spotlift/images, the images need about 70 MiB');
    expectUntouched(kit);
  });

  it('fails when the free disk cannot be read (never assumed to be enough)', async () => {
    const kit = engineKit({}, (ops) => ops.on('memoryAndDisk', said('Looks good.\nMEM_AVAILABLE_KB 8000000\n')));
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/could not read the free disk space under \/var\/lib\/spotlift\/images on node-b/);
  });

  it.each(['terminating', 'gone', 'draining', 'unreachable'] as const)(
    'refuses a %s destination without a single command',
    async (state) => {
      const kit = engineKit({ nodes: [aNode('node-a'), aNode('node-b', { state })] });
      const m = await kit.engine.run('mig-1');
      expect(m.state).toBe('failed');
      expect(m.error).toBe(`destination node-b is ${state}; pick a ready node`);
      expect(nothingRan(kit)).toEqual([]);
      expect(kit.streams.calls).toEqual([]);
    },
  );
});
