// Incremental guard checkpoints with bare CRIU on a real Debian 12 cloud kernel (soft-dirty on), in two qemu VMs.
// The lab nodes' kernel has no soft-dirty, so there guard checkpoints stay full; this suite shows the chain the
// engine's incremental guard dump builds (libs/engine guardDump / linkParent, libs/domain planGuardDump).
//
// vm-a runs the workload (64 MiB, 4 MiB hot set by default); vm-b plays the storage node. Each guard checkpoint
// is `criu dump --leave-running --track-mem` to a `criu page-server` on vm-b; the second one adds
// `--prev-images-dir ../guard-1` on both sides, so its pages hold only what the workload dirtied in between and
// vm-b's guard-2 links `parent -> ../guard-1` (vm-a keeps only guard-1's inventory.img, for CRIU's pid-reuse check). The workload keeps running on vm-a after each dump. Then vm-a
// "is lost" (the workload is killed), guard-2's other image files go to vm-b, and `criu restore` there reads the
// chain: the counter goes on from guard-2 and the workload verifies the sum of all its memory.
// Environment: SPOTLIFT_QEMU_GUARD_MIB (64), SPOTLIFT_QEMU_GUARD_HOT_MIB (4).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DST_ADDR,
  PAGE,
  bootPair,
  envInt,
  kv,
  parseStats,
  parseStatus,
  shutdownPair,
  sleep,
  startWorkload,
  verifyWorkload,
  type CriuStats,
  type Ssh,
  type VmPair,
} from './support.js';

const SIZE_MIB = envInt('SPOTLIFT_QEMU_GUARD_MIB', 64);
const HOT_MIB = envInt('SPOTLIFT_QEMU_GUARD_HOT_MIB', 4);
const PS_PORT = 27100; // criu page-server on vm-b
const RECV_PORT = 27102; // image files receiver on vm-b
const STATUS = '/lab/status';

const RECV_SH = `#!/bin/sh
# usage (as nc -e): recv.sh DIR -- untars the dump side's image files into DIR, answers done
tar x -C "$1" -f - && echo "recv=ok" || echo "recv=failed"
`;

describe('qemu lab: incremental guard checkpoints (dump --leave-running --track-mem with a parent)', () => {
  let work: string;
  let vms: VmPair | undefined;
  let a: Ssh;
  let b: Ssh;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'spotlift-qemu-guard-'));
    vms = await bootPair({ tag: 'grd', vmMiB: 1024, workDir: work });
    ({ a, b } = vms);
    const check = await a.sh('criu check --feature mem_dirty_track && uname -r');
    console.log(`[qemu] source: ${check.trim().replace(/\n/g, '; ')}`);
    await b.sh(`rm -rf /lab/*; cat > /lab/recv.sh <<'EOF'\n${RECV_SH}EOF\nchmod +x /lab/recv.sh`);
  }, 600_000);

  afterAll(async () => {
    if (vms) await shutdownPair(vms.names, [vms.a, vms.b]);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  /** One guard checkpoint: pages to vm-b's page-server, the workload left running. */
  async function guardDump(pid: number, dir: string, parent?: string): Promise<CriuStats & { counter: number }> {
    const prev = parent ? `--prev-images-dir ../${parent}` : '';
    await b.sh(
      `mkdir -p /lab/dst/${dir} && criu page-server -D /lab/dst/${dir} ${prev} --address ${DST_ADDR} --port ${PS_PORT} -d -o page-server.log`,
    );
    const out = await a.sh(
      `mkdir -p /lab/src/${dir}
       criu dump -t ${pid} -D /lab/src/${dir} ${prev} --track-mem --leave-running \
         --page-server --address ${DST_ADDR} --port ${PS_PORT} -o dump.log --display-stats > /lab/${dir}.stats 2>&1 \
         || { tail -20 /lab/src/${dir}/dump.log; exit 1; }
       cat /lab/${dir}.stats; cat ${STATUS}`,
      300_000,
    );
    const st = { ...parseStats(out), counter: parseStatus(out.trim().split('\n').pop()!).counter };
    console.log(`[qemu] guard ${dir}: ${JSON.stringify(st)}`);
    return st;
  }

  it('a full then an incremental guard dump; the incremental carries only the hot set; restore reads the chain', async () => {
    await a.sh('rm -rf /lab/*; mkdir -p /lab/src');
    await b.sh('rm -rf /lab/dst; mkdir -p /lab/dst');
    const { pid, unsharePid } = await startWorkload(a, { sizeMiB: SIZE_MIB, hotMiB: HOT_MIB, status: STATUS });
    expect(pid).toBeGreaterThan(1);

    const full = await guardDump(pid, 'guard-1');
    await sleep(3000); // the guard interval: the workload dirties its hot set meanwhile
    const running = parseStatus(await a.sh(`cat ${STATUS}`));
    expect(running.counter).toBeGreaterThan(full.counter); // --leave-running: it went on after the dump
    // as in the engine, the source keeps only the parent's inventory.img where --prev-images-dir points (the
    // engine copies it back from the storage node): CRIU reads it for its pid-reuse check (a missing directory
    // fails the dump, an empty one too: "Pid-reuse detection failed: no parent inventory"); the pages'
    // parent is asked of the page-server
    await a.sh('find /lab/src/guard-1 -mindepth 1 ! -name inventory.img -exec rm -rf {} +; ls /lab/src/guard-1');
    const inc = await guardDump(pid, 'guard-2', 'guard-1');

    const totalPages = (SIZE_MIB << 20) / PAGE;
    expect(full.pagesWritten!).toBeGreaterThan(totalPages * 0.9);
    expect(full.pagesSkippedParent ?? 0).toBe(0);
    expect(inc.pagesWritten!).toBeLessThan(full.pagesWritten! / 4);
    expect(inc.pagesSkippedParent!).toBeGreaterThan(totalPages * 0.5);
    console.log(
      `[qemu] GUARD incremental/full pages written: ${inc.pagesWritten}/${full.pagesWritten} = ` +
        `${(inc.pagesWritten! / full.pagesWritten!).toFixed(3)}; frozen ${inc.frozenUs} us vs ${full.frozenUs} us`,
    );

    // vm-a is lost: its workload dies; guard-2's non-page images go to vm-b next to the chain's pages
    await a.sh(`kill -9 ${pid} ${unsharePid} 2>/dev/null; true`);
    await b.sh(
      `setsid nc -l -p ${RECV_PORT} -e /lab/recv.sh /lab/dst/guard-2 </dev/null >/lab/recv.log 2>&1 &
       i=0; until netstat -ltn | grep -q ":${RECV_PORT} "; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done`,
    );
    const sent = await a.sh(
      `rm -f /lab/src/guard-2/parent; tar c -C /lab/src/guard-2 . | nc ${DST_ADDR} ${RECV_PORT}`,
      120_000,
    );
    expect(kv(sent).recv).toBe('ok');
    const links = await b.sh(
      `cd /lab/dst && for d in *; do [ -L $d/parent ] && echo "$d $(readlink $d/parent)"; done; true`,
    );
    expect(links.trim().split('\n')).toEqual(['guard-2 ../guard-1']);

    const restored = await b.sh(
      `t=$(nowms); criu restore -D /lab/dst/guard-2 -d --pidfile /lab/restored.pid -o restore.log \
         || { tail -20 /lab/dst/guard-2/restore.log; exit 1; }
       echo "restore_ms=$(( $(nowms) - t )) pid=$(cat /lab/restored.pid)"`,
      300_000,
    );
    const r = kv(restored);
    console.log(`[qemu] restore from the chain: ${restored.trim()}`);
    await sleep(1500);
    const after = parseStatus(await b.sh(`cat ${STATUS}`));
    expect(after.pid).toBe(Number(r.pid));
    expect(after.counter).toBeGreaterThan(inc.counter); // went on from the incremental's state...
    expect(after.counter - inc.counter).toBeLessThan(1000); // ... and did not start over
    const verified = await verifyWorkload(b, Number(r.pid), STATUS);
    expect(verified.verify).toMatch(/^ok:\d+$/);
    await b.sh(`kill -9 ${r.pid} 2>/dev/null; rm -rf /lab/dst; true`);
  }, 900_000);
});
