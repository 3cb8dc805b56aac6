/**
 * The TypeScript image reader (names, addresses and states as `crit decode --pretty` prints them) against CRIU's own decoder, `crit` (scripts/lab/crit.sh installs it from the
 * source of the lab's CRIU), on the same real images: every field inspectImages reports must be what
 * crit decodes. Needs only the crit binary, no lab node.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { inspectImages, readImage, readPagemap } from '../src/index.js';
import { IMAGES_DIR, loadImages } from './forensic-fixture.js';

/* eslint-disable @typescript-eslint/no-unsafe-return -- crit's JSON, compared field by field */
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const crit = (name: string): Json[] =>
  (JSON.parse(execFileSync('crit', ['decode', '--pretty', '-i', join(IMAGES_DIR, name)], { encoding: 'utf8' })) as Json)
    .entries as Json[];

describe('image reader vs crit decode (same images)', () => {
  const files = loadImages();

  it('pstree, core (comm, creds) and files (paths, positions, sockets) agree', async () => {
    const r = await inspectImages(files);
    expect(r.processes.map((p) => [p.pid, p.ppid, p.pgid, p.sid])).toEqual(
      crit('pstree.img').map((e) => [e.pid, e.ppid, e.pgid, e.sid]),
    );
    for (const p of r.processes) {
      const core = crit(`core-${p.pid}.img`)[0]!;
      expect(p.comm).toBe(core.tc.comm);
      const c = core.thread_core.creds;
      expect(p.creds).toMatchObject({ uid: c.uid, gid: c.gid, euid: c.euid, egid: c.egid, groups: c.groups ?? [] });
    }
    const critFiles = new Map(crit('files.img').map((f) => [f.id, f]));
    const ids = crit('ids-1.img')[0]!;
    for (const fd of crit(`fdinfo-${ids.files_id}.img`)) {
      const mine = r.processes[0]!.files.find((f) => f.fd === fd.fd)!;
      const f = critFiles.get(fd.id)!;
      expect(mine.type).toBe(f.type);
      if (f.reg) expect([mine.target, mine.pos, mine.size]).toEqual([f.reg.name, f.reg.pos, f.reg.size]);
    }
    const isk = [...critFiles.values()].find((f) => f.isk)!.isk;
    expect(r.sockets.find((s) => s.family === 'INET')).toMatchObject({
      ino: isk.ino,
      state: isk.state,
      local: `${isk.src_addr[0]}:${isk.src_port}`,
    });
    const usk = [...critFiles.values()].find((f) => f.usk)!.usk;
    // crit prints a unix name as its bytes with a trailing "=00" for the NUL
    expect(r.sockets.find((s) => s.family === 'UNIX')).toMatchObject({ ino: usk.ino, state: usk.state });
    expect(`${r.sockets.find((s) => s.family === 'UNIX')!.local}=00`).toBe(usk.name);
  });

  it('mm (mappings) and pagemap (runs) agree', async () => {
    const r = await inspectImages(files);
    for (const p of r.processes) {
      const vmas = crit(`mm-${p.pid}.img`)[0]!.vmas as Json[];
      expect(p.mappings.map((m) => [m.start, m.end])).toEqual(vmas.map((v) => [v.start, v.end]));
      const [head, ...entries] = crit(`pagemap-${p.pid}.img`);
      const map = readPagemap(`pagemap-${p.pid}.img`, files[`pagemap-${p.pid}.img`]!);
      expect(map.pagesFile).toBe(`pages-${head!.pages_id}.img`);
      expect(map.runs.map((x) => [`0x${x.vaddr.toString(16)}`, x.pages])).toEqual(
        entries.map((e) => [e.vaddr, e.nr_pages ?? e.compat_nr_pages]),
      );
    }
  });

  it('inventory and stats agree', async () => {
    const r = await inspectImages(files);
    const inv = crit('inventory.img')[0]!;
    expect(r.inventory).toMatchObject({
      imgVersion: inv.img_version,
      dumpRunId: inv.dump_criu_run_id,
      lsm: inv.lsmtype,
    });
    const stats = crit('stats-dump')[0]!.dump;
    expect(r.stats).toMatchObject({ pagesWritten: stats.pages_written, frozenTimeUs: stats.frozen_time });
    expect(readImage('pstree.img', files['pstree.img']!, 'pstree')).toHaveLength(crit('pstree.img').length);
  });
});
