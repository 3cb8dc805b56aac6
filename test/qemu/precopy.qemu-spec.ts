// Pre-copy with bare CRIU on a real Debian 12 cloud kernel (soft-dirty on), in two qemu VMs.
//
// vm-a (source) and vm-b (destination) boot from scripts/lab/qemu (image cached under
// $SPOTLIFT_CACHE/qemu); they reach each other over a private qemu socket link on loopback
// (10.77.1.1 <-> 10.77.1.2), the host reaches each over SSH on a forwarded loopback port, with the
// host key from the VM's node JSON pinned in a known_hosts file written here.
//
// Scenario, all driven over SSH with bare CRIU commands:
//  1. pre-copy: a workload (256 MiB, 16 MiB hot set by default) in its own pid namespace on vm-a;
//     N `criu pre-dump --track-mem` rounds, each streamed to a `criu page-server` on vm-b started with
//     `--prev-images-dir ../round-(N-1)` (the page-server side must have the parent link, or the
//     dump side sees no parent and sends every page again); a final `dump --leave-stopped` to a
//     page-server; the remaining image files go to vm-b over the link; `restore -d` on vm-b.
//     Asserts convergence (pages written shrink, pages skipped from parent > 0 from round 2 on),
//     the parent links on vm-b, and the workload's continuity (counter goes on, checksum of all its
//     memory verified by the restored process itself), then commits (kills the frozen source).
//  2. stop-and-copy of the same workload between the same VMs (one full dump to a page-server),
//     with the same checks; prints the downtime ratio pre-copy / stop-and-copy.
//
// Runs in CI as the jest project `qemu` (scripts/test.sh). Alone:
//   NODE_OPTIONS=--experimental-vm-modules npx jest --selectProjects qemu --forceExit
// Environment: SPOTLIFT_QEMU_WORKLOAD_MIB (256), SPOTLIFT_QEMU_HOT_MIB (16), SPOTLIFT_QEMU_ROUNDS (3),
// SPOTLIFT_QEMU_VM_MIB (1024), SPOTLIFT_LAB_DIR, SPOTLIFT_CACHE.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DST_ADDR,
  LAB_DIR,
  PAGE,
  bootPair,
  envInt,
  kv,
  parseStats,
  parseStatus,
  shutdownPair,
  type CriuStats,
  type Ssh,
  type VmPair,
  type WorkloadStatus,
} from './support.js';

const SIZE_MIB = envInt('SPOTLIFT_QEMU_WORKLOAD_MIB', 256);
const HOT_MIB = envInt('SPOTLIFT_QEMU_HOT_MIB', 16);
const ROUNDS = envInt('SPOTLIFT_QEMU_ROUNDS', 3);
const VM_MIB = envInt('SPOTLIFT_QEMU_VM_MIB', 1024);

const PS_PORT = 27000; // criu page-server, inside vm-b
const RECV_PORT = 27002; // image receiver + restore, inside vm-b

interface MigrationResult {
  strategy: 'pre-copy' | 'stop-and-copy' | 'pre-copy, lazy restore';
  rounds: (CriuStats & { ms: number })[];
  final: CriuStats;
  dumpMs: number;
  restoreMs: number;
  downtimeMs: number;
  workloadGapMs: number;
  /** lazy restore only: from restore done until the lazy-pages daemon had put every page in */
  lazyFillMs?: number;
  before: WorkloadStatus;
  after: WorkloadStatus;
  verified: WorkloadStatus;
  /** "dir parent" for each image directory on the destination */
  links: string[];
}

const RECV_SH = `#!/bin/sh
# usage (as nc -e): recv.sh DIR -- untars the dump side's image files into DIR, restores, answers
# with "lazy" as the 2nd argument: restore --lazy-pages, a local lazy-pages daemon filling the memory
d=$1
tar x -C "$d" -f - || { echo "restore_rc=99"; exit 1; }
t=$(nowms)
lazy=
if [ "$2" = lazy ]; then
  criu lazy-pages -D "$d" -d --pidfile /lab/lazy.pid -o lazy-pages.log || { echo "restore_rc=98"; exit 1; }
  lazy=--lazy-pages
fi
criu restore -D "$d" -d $lazy --pidfile /lab/restored.pid -o restore.log --display-stats > /lab/restore.stats 2>&1
rc=$?
echo "restore_rc=$rc restore_ms=$(( $(nowms) - t ))"
`;

describe('qemu lab: CRIU pre-copy on a Debian 12 cloud kernel', () => {
  let work: string;
  let vms: VmPair | undefined;
  let a: Ssh;
  let b: Ssh;
  const results: MigrationResult[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'spotlift-qemu-'));
    vms = await bootPair({ tag: 'spl', vmMiB: VM_MIB, workDir: work });
    ({ a, b } = vms);
    expect(a.node.dataAddress).toBe('10.77.1.1');
    expect(b.node.dataAddress).toBe(DST_ADDR);
    const check = await a.sh('criu check && criu check --feature mem_dirty_track && uname -r');
    console.log(`[qemu] source: ${check.trim().replace(/\n/g, '; ')}`);
    await b.sh(`rm -rf /lab/*; cat > /lab/recv.sh <<'EOF'\n${RECV_SH}EOF\nchmod +x /lab/recv.sh; criu check`);
  }, 600_000);

  afterAll(async () => {
    if (vms) await shutdownPair(vms.names, [vms.a, vms.b]);
    if (results.length) {
      const dir = join(LAB_DIR, 'qemu', 'results');
      mkdirSync(dir, { recursive: true });
      writeFileSync(
        join(dir, `precopy-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
        JSON.stringify(results, null, 2),
      );
    }
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  /** Starts the workload on vm-a as the init of its own pid namespace; returns its pid (vm-a's view). */
  async function startWorkload(): Promise<{ pid: number; unsharePid: number }> {
    const out = await a.sh(
      `rm -rf /lab/*; mkdir -p /lab/src
       unshare -p -f setsid workload ${SIZE_MIB} ${HOT_MIB} /lab/status 20 </dev/null >/dev/null 2>&1 &
       u=$!
       i=0; while [ ! -s /lab/status ]; do i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.2; done
       sleep 2
       echo "unshare=$u pid=$(cat /proc/$u/task/$u/children)"`,
      180_000,
    );
    const s = kv(out);
    return { pid: Number(s.pid), unsharePid: Number(s.unshare) };
  }

  /** One migration vm-a -> vm-b; rounds = 0 is stop-and-copy. */
  async function migrate(
    strategy: MigrationResult['strategy'],
    rounds: number,
    lazyRestore = false,
  ): Promise<MigrationResult> {
    await b.sh(`rm -rf /lab/dst /lab/restored.pid /lab/status; mkdir -p /lab/dst`);
    const { pid, unsharePid } = await startWorkload();
    expect(pid).toBeGreaterThan(1);
    const roundStats: MigrationResult['rounds'] = [];
    let prev: string | undefined;
    const pageServer = (dir: string, parent?: string): string =>
      `mkdir -p /lab/dst/${dir} && criu page-server -D /lab/dst/${dir} ${parent ? `--prev-images-dir ../${parent}` : ''} ` +
      `--address ${DST_ADDR} --port ${PS_PORT} -d -o page-server.log`;
    const toPageServer = `--page-server --address ${DST_ADDR} --port ${PS_PORT}`;

    for (let n = 1; n <= rounds; n++) {
      const dir = `round-${n}`;
      await b.sh(pageServer(dir, prev));
      const out = await a.sh(
        `mkdir -p /lab/src/${dir}; t0=$(nowms)
         criu pre-dump -t ${pid} -D /lab/src/${dir} ${prev ? `--prev-images-dir ../${prev}` : ''} --track-mem ${toPageServer} \
           -o pre-dump.log --display-stats > /lab/${dir}.stats 2>&1 || { tail -20 /lab/src/${dir}/pre-dump.log; exit 1; }
         echo "ms=$(( $(nowms) - t0 ))"; cat /lab/${dir}.stats`,
      );
      const st = { ...parseStats(out), ms: Number(kv(out).ms) };
      console.log(`[qemu] ${strategy} ${dir}: ${JSON.stringify(st)}`);
      roundStats.push(st);
      prev = dir;
    }

    // everything the freeze window needs is ready first: the page-server and the receiver on vm-b
    await b.sh(
      `${pageServer('final', prev)}
       setsid nc -l -p ${RECV_PORT} -e /lab/recv.sh /lab/dst/final${lazyRestore ? ' lazy' : ''} </dev/null >/lab/recv.log 2>&1 &
       i=0; until netstat -ltn | grep -q ":${RECV_PORT} "; do i=$((i+1)); [ $i -lt 100 ] || exit 1; sleep 0.1; done`,
    );
    await a.sh('kill -USR2 ' + String(pid) + '; sleep 0.5'); // reset the workload's max-gap meter
    const before = parseStatus(await a.sh('cat /lab/status'));
    // the freeze window, timed on vm-a: final dump -> image files to vm-b -> restore there -> answer
    const out = await a.sh(
      `mkdir -p /lab/src/final; t0=$(nowms)
       criu dump -t ${pid} -D /lab/src/final ${prev ? `--prev-images-dir ../${prev} --track-mem` : ''} ${toPageServer} \
         --leave-stopped -o dump.log --display-stats > /lab/final.stats 2>&1; rc=$?
       t1=$(nowms)
       [ $rc = 0 ] || { echo "dump_rc=$rc"; tail -20 /lab/src/final/dump.log; exit 1; }
       rm -f /lab/src/final/parent
       tar c -C /lab/src/final . | nc ${DST_ADDR} ${RECV_PORT} > /lab/recv.reply
       t2=$(nowms)
       echo "dump_ms=$((t1 - t0)) downtime_ms=$((t2 - t0)) $(cat /lab/recv.reply)"; cat /lab/final.stats
       cat /lab/status`,
      300_000,
    );
    const t = kv(out.split('\n')[0]!);
    const lastBefore = parseStatus(out.trim().split('\n').pop()!);
    if (t.restore_rc !== '0') {
      const log = await b.sh('tail -30 /lab/dst/final/restore.log; cat /lab/recv.log').catch(() => '');
      await a.sh(`kill -CONT ${pid}`).catch(() => undefined); // rollback: resume the frozen source
      throw new Error(`restore on vm-b failed: ${out}\n${log}`);
    }
    const final = parseStats(out);
    let lazyFillMs: number | undefined;
    if (lazyRestore) {
      // the daemon exits once every lazy page is in the restored process
      const fill = await b.sh(
        `t=$(nowms); p=$(cat /lab/lazy.pid); i=0
         while kill -0 $p 2>/dev/null; do i=$((i+1)); [ $i -lt 6000 ] || exit 1; sleep 0.1; done
         echo "fill_ms=$(( $(nowms) - t ))"; grep -c 'Lazy restore skips' /lab/dst/final/restore.log
         grep -E 'UFFD|pages' /lab/dst/final/lazy-pages.log | tail -3`,
        700_000,
      );
      lazyFillMs = Number(kv(fill).fill_ms);
      console.log(`[qemu] ${strategy} lazy fill: ${fill.trim().replace(/\n/g, '; ')}`);
    }

    // continuity on vm-b: the counter goes on, then the process checks the sum of all its memory
    await new Promise((r) => setTimeout(r, 1500));
    const after = parseStatus(await b.sh('cat /lab/status'));
    const restoredPid = Number((await b.sh('cat /lab/restored.pid')).trim());
    await b.sh(`kill -USR1 ${restoredPid}`);
    let verified = after;
    for (let i = 0; i < 120 && !verified.verify.startsWith('ok') && !verified.verify.startsWith('BAD'); i++) {
      await new Promise((r) => setTimeout(r, 500));
      verified = parseStatus(await b.sh('cat /lab/status'));
    }
    const gap = kv((await b.sh('cat /lab/status')).trim()).max_gap_ms;
    // commit: the destination runs and verified itself; the frozen source goes
    await a.sh(`kill -9 ${pid} ${unsharePid} 2>/dev/null; true`);

    const result: MigrationResult = {
      strategy,
      rounds: roundStats,
      final,
      dumpMs: Number(t.dump_ms),
      restoreMs: Number(t.restore_ms),
      downtimeMs: Number(t.downtime_ms),
      workloadGapMs: Number(gap),
      lazyFillMs,
      before: lastBefore,
      after,
      verified,
      links: [],
    };
    results.push(result);
    console.log(
      `[qemu] ${strategy}: ${JSON.stringify({ final, dumpMs: result.dumpMs, restoreMs: result.restoreMs, downtimeMs: result.downtimeMs, workloadGapMs: result.workloadGapMs })}`,
    );

    // continuity assertions (shared by both strategies)
    expect(before.counter).toBeGreaterThan(0);
    expect(after.pid).toBe(restoredPid);
    expect(after.counter).toBeGreaterThan(lastBefore.counter); // went on from where it was frozen
    expect(after.counter - lastBefore.counter).toBeLessThan(1000); // ... and did not start over
    expect(verified.verify).toMatch(/^ok:\d+$/);

    // the chain of images on the destination, then free vm-b's memory for the next run
    const links = await b.sh(
      `cd /lab/dst && for d in *; do [ -L $d/parent ] && echo "$d $(readlink $d/parent)"; done; kill -9 ${restoredPid} 2>/dev/null; true`,
    );
    result.links = links.trim().split('\n').filter(Boolean).sort();
    await b.sh('rm -rf /lab/dst');
    return result;
  }

  it('pre-copy converges over rounds, keeps parent links on the page-server side, and the workload goes on', async () => {
    const r = await migrate('pre-copy', ROUNDS);
    const totalPages = (SIZE_MIB << 20) / PAGE;
    const [first, ...later] = r.rounds;
    // round 1 writes (about) everything, later rounds only what was dirtied (the hot set, at 2 MiB
    // granularity when transparent huge pages are on)
    expect(first!.pagesWritten!).toBeGreaterThan(totalPages * 0.9);
    for (const round of later) {
      expect(round.pagesWritten!).toBeLessThan(first!.pagesWritten! / 2);
      expect(round.pagesSkippedParent!).toBeGreaterThan(0);
    }
    expect(r.final.pagesWritten!).toBeLessThan(first!.pagesWritten! / 2);
    expect(r.final.pagesSkippedParent!).toBeGreaterThan(totalPages * 0.5);
    // the chain of images on the destination (made by the page-servers): final -> round-N -> ... -> round-1
    const expected = [`final ../round-${ROUNDS}`];
    for (let n = 2; n <= ROUNDS; n++) expected.push(`round-${n} ../round-${n - 1}`);
    expect(r.links).toEqual(expected.sort());
  }, 600_000);

  it('stop-and-copy of the same workload between the same VMs, and the downtime ratio', async () => {
    const sc = await migrate('stop-and-copy', 0);
    expect(sc.final.pagesSkippedParent ?? 0).toBe(0);
    expect(sc.links).toEqual([]);
    const pc = results.find((x) => x.strategy === 'pre-copy');
    expect(pc).toBeDefined();
    const ratio = pc!.downtimeMs / sc.downtimeMs;
    const line = {
      workload: `${SIZE_MIB} MiB, hot ${HOT_MIB} MiB`,
      rounds: ROUNDS,
      precopyDowntimeMs: pc!.downtimeMs,
      stopAndCopyDowntimeMs: sc.downtimeMs,
      ratio: Number(ratio.toFixed(3)),
      dumpRatio: Number((pc!.dumpMs / sc.dumpMs).toFixed(3)),
      frozenRatio: Number(((pc!.final.frozenUs ?? 0) / (sc.final.frozenUs ?? 1)).toFixed(3)),
      workloadGapRatio: Number((pc!.workloadGapMs / sc.workloadGapMs).toFixed(3)),
      restoreMs: { precopy: pc!.restoreMs, stopAndCopy: sc.restoreMs },
    };
    console.log(`[qemu] RATIO pre-copy/stop-and-copy downtime: ${JSON.stringify(line)}`);
    // the target (<= 0.15) is reported, not asserted: restore of all memory is in both windows
    expect(ratio).toBeLessThan(1);
  }, 600_000);

  it('pre-copy with a lazy restore: the restore leaves the memory to a local lazy-pages daemon', async () => {
    const r = await migrate('pre-copy, lazy restore', ROUNDS, true);
    const sc = results.find((x) => x.strategy === 'stop-and-copy')!;
    const pc = results.find((x) => x.strategy === 'pre-copy')!;
    const line = {
      workload: `${SIZE_MIB} MiB, hot ${HOT_MIB} MiB`,
      lazyDowntimeMs: r.downtimeMs,
      precopyDowntimeMs: pc.downtimeMs,
      stopAndCopyDowntimeMs: sc.downtimeMs,
      ratio: Number((r.downtimeMs / sc.downtimeMs).toFixed(3)),
      restoreMs: { lazy: r.restoreMs, precopy: pc.restoreMs, stopAndCopy: sc.restoreMs },
      lazyFillMs: r.lazyFillMs,
      // the workload's own longest stall: after resume its hot set still faults in through the daemon
      workloadGapMs: r.workloadGapMs,
      workloadGapRatio: Number((r.workloadGapMs / sc.workloadGapMs).toFixed(3)),
    };
    console.log(`[qemu] RATIO pre-copy with lazy restore/stop-and-copy downtime: ${JSON.stringify(line)}`);
    expect(r.downtimeMs).toBeLessThan(pc.downtimeMs);
  }, 900_000);
});
