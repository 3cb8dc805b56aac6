import { loadImages, procView, WORKDIR } from '../../test/forensic-fixture.js';
import { CriuImageError } from '../errors.js';
import { inspectImages } from './inspect.js';
import { filesPageSource, readPagemap } from './pages.js';
import { patternBytes, searchMemory } from './search.js';

// Golden: the real `criu dump --leave-running` in test/fixtures/forensic (capture.sh), compared with what
// /proc showed of the same process just before the dump (proc.json). Pids are the pid namespace's own.
describe('inspectImages on a real dump (forensic fixture)', () => {
  const files = loadImages();
  const proc = procView();

  it('gives the process tree with command lines read from the dumped memory, equal to /proc', async () => {
    const r = await inspectImages(files);
    expect(r.processes.map((p) => [p.pid, p.ppid, p.pgid, p.sid, p.threads])).toEqual([
      [1, 0, 1, 1, [1]],
      [2, 1, 1, 1, [2]],
    ]);
    for (const p of r.processes) {
      expect(p.comm).toBe('workload');
      expect(p.cmdline).toEqual(proc.cmdline);
      expect(p.state).toBe('alive');
      expect(p.exe).toBe(`${WORKDIR}/workload`);
      expect(p.cwd).toBe(WORKDIR);
      expect(p.root).toBe('/');
      expect(p.creds).toMatchObject({ uid: 0, gid: 0, euid: 0, fsuid: 0, groups: [], capEff: '0x000001fffeffffff' });
    }
  });

  it('lists each open file with its position, as /proc/<pid>/fd and fdinfo showed them', async () => {
    const [root] = (await inspectImages(files)).processes;
    const fromProc = Object.entries(proc.fds)
      .map(([fd, v]) => ({ fd: Number(fd), pos: v.pos, socket: v.target.startsWith('socket:') }))
      .sort((a, b) => a.fd - b.fd);
    expect(root!.files.map((f) => ({ fd: f.fd, pos: f.pos ?? 0, socket: f.type.endsWith('SK') }))).toEqual(fromProc);
    expect(root!.files.find((f) => f.fd === 3)).toEqual({
      fd: 3,
      type: 'REG',
      target: `${WORKDIR}/data.txt`,
      pos: 7,
      flags: 0o100002, // O_RDWR | O_LARGEFILE
      size: 22,
    });
    // the socket inodes are the ones /proc/<pid>/fd named
    expect(root!.files.filter((f) => f.type.endsWith('SK')).map((f) => f.target)).toEqual([
      proc.fds['4']!.target,
      proc.fds['5']!.target,
    ]);
  });

  it('decodes the TCP listener and the unix listener, shared by parent and child', async () => {
    const { sockets } = await inspectImages(files);
    expect(sockets.map(({ ino: _ino, ...s }) => s)).toEqual([
      {
        family: 'INET',
        type: 'STREAM',
        proto: 'TCP',
        state: 'LISTEN',
        local: '127.0.0.1:27631',
        backlog: 4,
        owners: [
          { pid: 1, fd: 4 },
          { pid: 2, fd: 4 },
        ],
      },
      {
        family: 'UNIX',
        type: 'STREAM',
        state: 'LISTEN',
        local: `${WORKDIR}/unix.sock`,
        backlog: 4,
        owners: [
          { pid: 1, fd: 5 },
          { pid: 2, fd: 5 },
        ],
      },
    ]);
  });

  it('gives the mappings with sizes, which are file-backed, and how much of each was dumped', async () => {
    const [root] = (await inspectImages(files)).processes;
    const m = root!.mappings;
    expect(m.map((v) => v.kind)).toEqual([
      'file',
      'file',
      'file',
      'file',
      'file',
      'anon',
      'heap',
      'vvar',
      'vdso',
      'anon',
      'vsyscall',
    ]);
    expect(m.filter((v) => v.kind === 'file').every((v) => v.file === `${WORKDIR}/workload`)).toBe(true);
    expect(m.at(-1)).toMatchObject({ start: '0xffffffffff600000', bytes: 4096, perms: '--xp' });
    expect(m.find((v) => v.kind === 'heap')).toMatchObject({ perms: 'rw-p', bytes: 0x22000 });
    expect(m.reduce((n, v) => n + v.dumpedPages, 0) * 4096).toBe(root!.dumpedBytes);
    expect(root!.dumpedBytes).toBe(61440); // pages-1.img's size
  });

  it('gives namespaces, inventory and the dump stats; says what images cannot tell', async () => {
    const r = await inspectImages(files);
    expect(r.processes[0]!.namespaces).toEqual({ pid: 9, net: 2, ipc: 3, uts: 4, mnt: 6, user: 7, cgroup: 8, time: 5 });
    expect(r.mounts).toEqual([]); // the host's mount namespace was not dumped
    expect(r.inventory).toMatchObject({ imgVersion: 2, lsm: 'NO_LSM' });
    expect(r.stats).toMatchObject({ pagesWritten: 30, pagesScanned: expect.any(Number) });
    expect(r.notes.join(' ')).toMatch(/neither its own version nor the kernel/);
  });

  it('without the pages, leaves the command lines out and says so', async () => {
    const { 'pages-1.img': _a, 'pages-2.img': _b, ...rest } = files;
    const r = await inspectImages(rest);
    expect(r.processes[0]!.cmdline).toBeUndefined();
    expect(r.notes).toContain("pid 1: its command line is not in the pages read (only 'workload')");
  });
});

describe('searchMemory on the fixture', () => {
  const files = loadImages();
  const search = async (pattern: string, maxHits = 10) => {
    const r = await inspectImages(files);
    const maps = new Map(
      r.processes.map((p) => [p.pid, readPagemap(`pagemap-${p.pid}.img`, files[`pagemap-${p.pid}.img`]!)]),
    );
    return searchMemory(r.processes, maps, filesPageSource(files), patternBytes(pattern, 'utf8'), {
      maxHits,
      context: 8,
      expired: () => false,
    });
  };

  it('finds the string the workload holds in its heap, placed by process, address and mapping', async () => {
    const r = await search('SPOTLIFT-FORENSIC-NEEDLE-4711');
    const heap = r.hits.filter((h) => h.mapping.endsWith('[heap]'));
    expect(heap.map((h) => h.pid)).toEqual([1, 2]);
    expect(heap[0]!.text).toContain('SPOTLIFT-FORENSIC-NEEDLE-4711');
    expect(r.bytesScanned).toBe(2 * 61440);
  });

  it('does not find a string the workload never held', async () => {
    expect((await search('SPOTLIFT-NOT-IN-MEMORY')).hits).toEqual([]);
  });

  it('stops at the hit limit and at the deadline, and says which', async () => {
    expect((await search('workload', 2)).truncated).toBe('hits');
    const r = await inspectImages(files);
    const maps = new Map([[1, readPagemap('pagemap-1.img', files['pagemap-1.img']!)]]);
    const out = await searchMemory(r.processes, maps, filesPageSource(files), patternBytes('x', 'utf8'), {
      maxHits: 10,
      context: 0,
      expired: () => true,
    });
    expect(out).toEqual({ hits: [], truncated: 'time', bytesScanned: 0 });
  });

  it('hands each hit over as it is found, before the scan goes on (a streamed answer)', async () => {
    const r = await inspectImages(files);
    const maps = new Map(
      r.processes.map((p) => [p.pid, readPagemap(`pagemap-${p.pid}.img`, files[`pagemap-${p.pid}.img`]!)]),
    );
    const pages = filesPageSource(files);
    const events: string[] = [];
    const source = {
      read: (file: string, offset: number, length: number) => {
        events.push(`read ${file}`);
        return pages.read(file, offset, length);
      },
    };
    let stop = false;
    const out = await searchMemory(r.processes, maps, source, patternBytes('SPOTLIFT-FORENSIC-NEEDLE-4711', 'utf8'), {
      maxHits: 10,
      context: 0,
      // the reader went away after the first hit: nothing more is read
      expired: () => stop,
      onHit: (hit) => {
        events.push(`hit ${hit.pid}`);
        stop = true;
      },
    });
    expect(out.hits).toHaveLength(1);
    expect(out.truncated).toBe('time');
    // pid 1's pages were read, the hit handed over, and pid 2's pages never read
    expect(events.at(-1)).toBe('hit 1');
    expect(events.filter((e) => e === 'read pages-2.img')).toEqual([]);
  });

  it.each([
    ['', 'utf8', /empty/],
    ['abc', 'hex', /even number of hex digits/],
    ['zz', 'hex', /hex digits/],
    ['a'.repeat(257), 'utf8', /257 bytes; at most 256/],
  ] as const)('refuses the pattern %j (%s)', (pattern, encoding, why) => {
    expect(() => patternBytes(pattern, encoding)).toThrow(why);
  });

  it('a pages file shorter than its pagemap is an image error, not a crash', async () => {
    const cut = { ...files, 'pages-1.img': files['pages-1.img']!.subarray(0, 4096) };
    const r = await inspectImages(files);
    const maps = new Map([[1, readPagemap('pagemap-1.img', files['pagemap-1.img']!)]]);
    await expect(
      searchMemory(r.processes, maps, filesPageSource(cut), patternBytes('x', 'utf8'), {
        maxHits: 1,
        context: 0,
        expired: () => false,
      }),
    ).rejects.toThrow(CriuImageError);
  });
});
