/**
 * Declared files inside the engine, over the fake node operations (fakeEngineKit: the source's `inspectPaths`
 * and the destination's `freeSpace` answer by name; their text is golden in node-ops) and a scripted stream
 * (the copy is the transport's tar pipe): where each copy happens relative to the freeze, and that a failed
 * copy leaves the workload running in exactly one place. The copies themselves run for real
 * in file-sync-commands.int-spec.ts and test/files.e2e-spec.ts.
 */
import { createHash } from 'node:crypto';
import { archive, aWorkload, type FakeProcessOps, member } from '@spotlift/testing';
import { fakeEngineKit, phaseNames, scriptHappyOps } from '@spotlift/testing';
import { MARK_MARGIN_MS } from '../node-ops/file-sync-commands.js';

/** What the source's tar sends (the relay checks it is a tar of the declared paths). */
const FILES_TAR = archive(
  member({ name: 'srv/data/app/', type: '5' }),
  member({ name: 'srv/data/app/journal', data: 'line 1\n' }),
  member({ name: 'var/lib/spotlift/images/mig-1/src/file-sync/deleted' }),
);
const FILES_SHA = createHash('sha256').update(FILES_TAR).digest('hex');

/** node-b's answer to the free-space question: 1 GiB free on /srv, `heldKib` of /srv/data/app there already. */
const freeOnB = (availKib = 1_048_576, heldKib = 0) => `FREE\t${availKib}\t/srv\t${heldKib}\t/srv/data/app\n`;

function setup(destinationSpace = freeOnB(), opts: { tars?: Buffer[]; paths?: string[]; home?: string } = {}) {
  const kit = fakeEngineKit({ workload: aWorkload({ paths: opts.paths ?? ['/srv/data/app'] }) });
  const tars = opts.tars ?? [];
  /** When each copy began (wall clock), in order. */
  const copiesAt: number[] = [];
  /** How many node operations had been called when each copy began: its place among them. */
  const copiesAfter: number[] = [];
  const said = (stdout: string) => ({ code: 0, stdout, stderr: '' });
  kit.ops.on('freeSpace', said(destinationSpace), { node: 'node-b' });
  const home = `HOME\t${opts.home ?? '/var/lib/spotlift/home'}\n`;
  kit.ops.on('inspectPaths', said(`${home}SIZE\t4096\t/srv/data/app\n`), { node: 'node-a' });
  kit.streams.on({
    node: 'node-a',
    match: /tar -cf - --null --no-recursion/,
    reply: () => {
      copiesAt.push(Date.now());
      copiesAfter.push(kit.ops.calls.length);
      const tar = tars[copiesAt.length - 1] ?? FILES_TAR;
      return { stdout: tar.toString('latin1'), stderr: 'SPOTLIFT_FILES sent=3 deleted=0\n' };
    },
  });
  const happy = () => scriptHappyOps(kit.ops, kit.streams);
  return { ...kit, shell: kit.streams, copiesAt, copiesAfter, happy };
}

/** The operations of `names` that ran on `node`. */
const did = (ops: FakeProcessOps, node: string, ...names: string[]) =>
  ops.calls.filter((c) => c.node === node && names.includes(c.op)).map((c) => c.op);
/** Where the first call of one of `names` is among all the operations called (-1: never). */
const at = (ops: FakeProcessOps, ...names: string[]) => ops.calls.findIndex((c) => names.includes(c.op));

describe('declared files in a migration', () => {
  it('copies them while the workload runs (a second round past the mark margin) and once more after the dump', async () => {
    const { shell, engine, copiesAt, copiesAfter, ops, happy } = setup();
    shell.on({ node: 'node-b', match: /tar -C \/ -xpf -/, reply: { stdout: `${FILES_SHA}\n` } });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(phaseNames(m).slice(0, 4)).toEqual(['preflight:ok', 'prepare:ok', 'files:ok', 'dump:ok']);
    expect(m.files).toMatchObject({
      synced: ['/srv/data/app'],
      shared: [],
      rounds: [
        { sent: 3, deleted: 0, bytes: FILES_TAR.length },
        { sent: 3, deleted: 0, bytes: FILES_TAR.length },
      ],
      final: { sent: 3, deleted: 0, bytes: FILES_TAR.length },
    });
    expect(copiesAfter).toHaveLength(3);
    // (a copy "after n operations" began after the n-th call, index n - 1, and before call n)
    expect(copiesAfter[1]).toBeLessThanOrEqual(at(ops, 'dump'));
    expect(copiesAfter[2]).toBeGreaterThan(at(ops, 'dump'));
    expect(copiesAfter[2]).toBeLessThanOrEqual(at(ops, 'restore', 'armRestore.fire'));
    // Round one was short, but a file written just before it would be in the freeze's copy (it sends what
    // changed since MARK_MARGIN_MS before the last round began): round two begins past the margin.
    expect(copiesAt[1]! - copiesAt[0]!).toBeGreaterThanOrEqual(MARK_MARGIN_MS);
  });

  it('a final copy that fails inside the freeze rolls back: the source resumes, nothing is restored', async () => {
    const { shell, engine, workloads, ops, happy } = setup();
    shell.on({ node: 'node-b', match: /tar -C \/ -xpf -/, times: 2, reply: { stdout: `${FILES_SHA}\n` } }).on({
      node: 'node-b',
      match: /tar -C \/ -xpf -/,
      reply: { code: 2, stderr: 'tar: srv/data/app/journal.log: Cannot write: No space left on device\n' },
    });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/final file copy: unpacking on node-b failed \(2\): .*No space left on device/);
    expect(did(ops, 'node-a', 'resumeTree')).toHaveLength(1);
    expect(did(ops, 'node-a', 'killTree')).toEqual([]);
    expect(did(ops, 'node-b', 'restore', 'armRestore.fire')).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
  });

  it.each([
    [
      'too little room on its file system',
      freeOnB(2048, 0),
      /node-b lacks room for the declared files: 2 MiB free on \/srv, \/srv\/data\/app need about 4 MiB/,
    ],
    ['no answer about its disk', '', /could not read the free disk space for the declared files on node-b/],
  ])('a destination with %s fails preflight: nothing frozen, nothing copied', async (_, space, why) => {
    const { shell, engine, workloads, ops, happy } = setup(space);
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error ?? m.rollbackReason).toMatch(why);
    expect(did(ops, 'node-a', 'dump')).toEqual([]);
    expect(shell.ran('node-a', /tar -cf - --null/)).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
  });

  it('an older copy on the destination counts: only the difference needs room', async () => {
    const { shell, engine, happy } = setup(freeOnB(2048, 3072));
    shell.on({ node: 'node-b', match: /tar -C \/ -xpf -/, reply: { stdout: `${FILES_SHA}\n` } });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
  });

  it('a copy that fails while the workload runs fails the job before any freeze', async () => {
    const { shell, engine, workloads, ops, happy } = setup();
    shell.on({
      node: 'node-b',
      match: /tar -C \/ -xpf -/,
      reply: { code: 2, stderr: 'tar: srv/data/app: Cannot mkdir: Read-only file system\n' },
    });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/file copy: unpacking on node-b failed \(2\): .*Read-only file system/);
    expect(did(ops, 'node-a', 'dump')).toEqual([]);
    expect(did(ops, 'node-a', 'resumeTree', 'killTree')).toEqual([]);
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
  });

  describe('a hostile source (the relay refuses its stream; nothing of the refused member reaches node-b)', () => {
    const hostile = archive(
      member({ name: 'srv/data/app/', type: '5' }),
      member({ name: 'srv/data/app/x', type: '2', link: '/etc' }),
      member({ name: 'srv/data/app/x/passwd', data: 'root::0:0::/root:/bin/sh\n' }),
    );

    it('while the workload runs: the job fails before any freeze', async () => {
      const { shell, engine, workloads, ops, happy } = setup(freeOnB(), { tars: [hostile] });
      shell.on({
        node: 'node-b',
        match: /tar -C \/ -xpf -/,
        reply: { code: 2, stderr: 'tar: Skipping to next header\n' },
      });
      happy();
      const m = await engine.run('mig-1');
      expect(m.state).toBe('failed');
      expect(m.error).toMatch(
        /file copy from node-a refused by the orchestrator after 1 accepted member\(s\).*"srv\/data\/app\/x" is a symbolic link to "\/etc", outside the declared paths/,
      );
      expect(did(ops, 'node-a', 'dump')).toEqual([]);
      expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
    });

    it('inside the freeze: the job rolls back, the source resumes, nothing is restored', async () => {
      const deletes = archive(
        member({
          name: 'var/lib/spotlift/images/mig-1/src/file-sync/deleted',
          data: 'srv/data/app/../../../etc/passwd\0',
        }),
      );
      const { shell, engine, workloads, ops, happy } = setup(freeOnB(), { tars: [FILES_TAR, FILES_TAR, deletes] });
      shell
        .on({ node: 'node-b', match: /tar -C \/ -xpf -/, times: 2, reply: { stdout: `${FILES_SHA}\n` } })
        .on({ node: 'node-b', match: /tar -C \/ -xpf -/, reply: { code: 2 } });
      happy();
      const m = await engine.run('mig-1');
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(/final file copy from node-a refused .*has '\.\.' in it/);
      expect(did(ops, 'node-a', 'resumeTree')).toHaveLength(1);
      expect(did(ops, 'node-b', 'restore', 'armRestore.fire')).toEqual([]);
      expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-a', state: 'running' });
    });
  });

  it.each([
    ['a system path registered before the rules', { paths: ['/etc/ssh'] }, /'\/etc\/ssh' is in \/etc/],
    ['a path inside the SSH login home', { home: '/srv/data' }, /'\/srv\/data\/app' is in \/srv\/data /],
  ])('%s is refused in preflight, before anything is copied', async (_what, opts, why) => {
    const { shell, engine, ops, happy } = setup(freeOnB(), opts);
    shell.on({ node: 'node-b', match: /tar -C \/ -xpf -/, reply: { stdout: `${FILES_SHA}\n` } });
    happy();
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(why);
    expect(m.error).toMatch(/declared files refused/);
    expect(did(ops, 'node-a', 'dump')).toEqual([]);
    expect(shell.ran('node-a', /tar -cf - --null/)).toEqual([]);
  });
});
