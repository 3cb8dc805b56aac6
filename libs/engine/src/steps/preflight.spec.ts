/**
 * Preflight: every check fails the job before anything touches the workload, with a reason a person can
 * act on. The CPU check's failure is CRIU's real log from an edited cpuinfo.img (libs/criu fixtures).
 */
import { aNode } from '@spotlift/testing';
import { criuFixture, engineKit, phaseNames, scriptHappyPath } from '@spotlift/testing';

/** Nothing was done to the workload: no dump, no signal, no directory for images. */
function expectUntouched(kit: ReturnType<typeof engineKit>): void {
  expect(kit.shell.ran('node-a', /criu dump|kill -|page-server/)).toEqual([]);
  expect(kit.shell.ran('node-b', /criu page-server|criu restore/)).toEqual([]);
}

describe('preflight', () => {
  it('runs the CPU check the way CRIU compares capability words: dump on the source, check on the destination', async () => {
    const kit = engineKit();
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    const [dump] = kit.shell.ran('node-a', /criu cpuinfo dump/);
    const [check] = kit.shell.ran('node-b', /criu cpuinfo check/);
    expect(dump).toMatch(/-D \/var\/lib\/spotlift\/images\/mig-1\/cpuinfo-src --cpu-cap=cpu/);
    expect(check).toMatch(/-D \/var\/lib\/spotlift\/images\/mig-1\/cpuinfo-dst --cpu-cap=cpu/);
    // cpuinfo.img travels from the source to the destination's directory.
    // in the same command as the check, its bytes on stdin
    expect(
      kit.shell.ran(
        'node-b',
        /base64 -d > \/var\/lib\/spotlift\/images\/mig-1\/cpuinfo-dst\/cpuinfo\.img && criu cpuinfo check/,
      ),
    ).toHaveLength(1);
    expect(kit.shell.calls.find((c) => /criu cpuinfo check/.test(c.command))?.stdin).toBe(
      Buffer.from('cpuinfo image bytes').toString('base64'),
    );
    // Preflight first, then everything else: the check ran before the page-server was started.
    const checkAt = kit.shell.calls.findIndex((c) => /criu cpuinfo check/.test(c.command));
    const serverAt = kit.shell.calls.findIndex((c) => /criu page-server/.test(c.command));
    expect(checkAt).toBeLessThan(serverAt);
  });

  it('fails on an incompatible CPU with the class and CRIU’s own line', async () => {
    const kit = engineKit();
    kit.shell.on({ node: 'node-b', match: /criu cpuinfo check/, reply: { code: 1 } }).on({
      node: 'node-b',
      match: /tail -n 100 .*cpuinfo-check\.log/,
      reply: { stdout: criuFixture('logs/cpuinfo-check-capabilities.log').toString() },
    });
    scriptHappyPath(kit.shell);
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
    const kit = engineKit();
    kit.shell.on({ node: 'node-a', match: /base64 -w0 .*cpuinfo\.img/, reply: { stdout: '' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('criu cpuinfo dump on node-a wrote no cpuinfo.img');
    expectUntouched(kit);
  });

  it('refuses a destination whose CRIU is older than the source’s', async () => {
    const old = aNode('node-b');
    old.probe = { ...old.probe!, criuVersion: '4.1.1' };
    const kit = engineKit({ nodes: [aNode('node-a'), old] });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe(
      'CRIU 4.1.1 on node-b is older than CRIU 4.2.1 on node-a; an older CRIU may not read newer images: upgrade node-b',
    );
    // Decided from the probes alone: not even the workload was inspected.
    expect(kit.shell.calls.filter((c) => !/^rm -rf/.test(c.command))).toEqual([]);
  });

  it('accepts a newer destination CRIU, and refuses an unprobed one', async () => {
    const newer = aNode('node-b');
    newer.probe = { ...newer.probe!, criuVersion: '4.3' };
    const ok = engineKit({ nodes: [aNode('node-a'), newer] });
    scriptHappyPath(ok.shell);
    expect((await ok.engine.run('mig-1')).state).toBe('completed');

    const unprobed = aNode('node-b');
    delete unprobed.probe;
    const kit = engineKit({ nodes: [aNode('node-a'), unprobed] });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/the CRIU version of node-b is unknown \(probe it again: POST \/nodes\/node-b\/probe\)/);
  });

  it('fails when the destination lacks disk for the images', async () => {
    const kit = engineKit();
    kit.shell.on({
      match: /criu check/,
      reply: { stdout: 'Looks good.\nMEM_AVAILABLE_KB 8000000\nDISK_AVAIL_BYTES 10485760\n' },
    });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toBe('node-b has 10 MiB free under /var/lib/spotlift/images, the images need about 70 MiB');
    expectUntouched(kit);
  });

  it('fails when the free disk cannot be read (never assumed to be enough)', async () => {
    const kit = engineKit();
    kit.shell.on({ match: /criu check/, reply: { stdout: 'Looks good.\nMEM_AVAILABLE_KB 8000000\n' } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/could not read the free disk space under \/var\/lib\/spotlift\/images on node-b/);
  });

  it.each(['terminating', 'gone', 'draining', 'unreachable'] as const)(
    'refuses a %s destination without a single command',
    async (state) => {
      const kit = engineKit({ nodes: [aNode('node-a'), aNode('node-b', { state })] });
      scriptHappyPath(kit.shell);
      const m = await kit.engine.run('mig-1');
      expect(m.state).toBe('failed');
      expect(m.error).toBe(`destination node-b is ${state}; pick a ready node`);
      expect(kit.shell.calls.filter((c) => !/^rm -rf/.test(c.command))).toEqual([]);
    },
  );
});
