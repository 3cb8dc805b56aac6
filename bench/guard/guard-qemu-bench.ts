/**
 * Guard mode with incremental checkpoints, on a real kernel with soft-dirty (the qemu lab: two TCG VMs with
 * Debian 12's cloud kernel), through the orchestrator: each rep is one run of
 * test/qemu/guard-engine.qemu-spec.ts (fresh VMs) with a baseline: full `--leave-running` checkpoints on demand
 * (forensic, no parent), the last restored as a clone; then guard every interval until `count` guard checkpoints
 * are stored (the first full, the others incremental: only the pages dirtied since the one before); then vm-a
 * powered off, the loss confirmed, and the workload restored from the chain on vm-b. Same workload, same VMs, same
 * run for both. Prints each rep's rows and, over reps, the medians.
 *
 *   bash bench/run.sh guard --qemu [--reps 1] [--count 4] [--interval 10] [--mib 64] [--hot 4] [--vm-mib 1024]
 *
 * The issue's 256 MiB with a 16 MiB hot set needs `--mib 256 --hot 16 --vm-mib 2048`: vm-b holds the chain, the
 * restore's copy of it and the restored workload, all in RAM.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { median } from '../support/stats.js';

interface Take {
  kind: 'forensic' | 'guard full' | 'guard incremental';
  freezeMs: number;
  pagesWritten: number;
  storedBytes: number;
  takeMs: number;
}
interface Restore {
  restoreMs: number;
  chain: number;
  imageBytes: number;
  phases: Record<string, number>;
}
interface Results {
  sizeMiB: number;
  hotMiB: number;
  intervalSeconds: number;
  baseline: Take[];
  baselineRestore?: Restore;
  guard: Take[];
  lossRestore?: Restore & { confirmedToRunningMs: number };
  loadavg: string;
}

const RESULTS = join(process.env.SPOTLIFT_LAB_DIR ?? '.lab', 'qemu', 'results');
const MIB = 2 ** 20;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const count = arg('count', '4');
const env = {
  ...process.env,
  NODE_OPTIONS: '--experimental-vm-modules',
  SPOTLIFT_QEMU_GUARD_COUNT: count,
  SPOTLIFT_QEMU_GUARD_BASELINE: count,
  SPOTLIFT_QEMU_GUARD_INTERVAL: arg('interval', '10'),
  SPOTLIFT_QEMU_GUARD_MIB: arg('mib', '64'),
  SPOTLIFT_QEMU_GUARD_HOT_MIB: arg('hot', '4'),
  SPOTLIFT_QEMU_VM_MIB: arg('vm-mib', '1024'),
};

/** Runs the suite once; returns its results file (written by its afterAll). */
function runOnce(): Results {
  const started = Date.now();
  const r = spawnSync(
    'npx',
    ['jest', 'test/qemu/guard-engine.qemu-spec.ts', '--runInBand', '--forceExit', '--selectProjects', 'qemu'],
    { stdio: ['ignore', 'ignore', 'inherit'], env },
  );
  if (r.status !== 0) throw new Error(`the qemu guard suite failed (exit ${r.status})`);
  const files = readdirSync(RESULTS)
    .filter((f) => f.startsWith('guard-'))
    .map((f) => join(RESULTS, f))
    .filter((f) => statSync(f).mtimeMs >= started);
  if (files.length !== 1) throw new Error(`expected one new results file in ${RESULTS}, found ${files.length}`);
  return JSON.parse(readFileSync(files[0]!, 'utf8')) as Results;
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

const f = (xs: number[], d = 0) =>
  xs.length ? `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(' ')})` : '-';

/** One row per kind of checkpoint: freeze, pages, stored bytes, take time (medians, the values in brackets). */
function takeRows(takes: Take[]): string[][] {
  const kinds: Take['kind'][] = ['forensic', 'guard full', 'guard incremental'];
  const label = {
    forensic: 'full on demand (baseline)',
    'guard full': 'guard, full',
    'guard incremental': 'guard, incremental',
  };
  return kinds
    .map((k) => takes.filter((t) => t.kind === k))
    .filter((ts) => ts.length)
    .map((ts) => [
      label[ts[0]!.kind],
      f(ts.map((t) => t.freezeMs)),
      f(ts.map((t) => t.pagesWritten)),
      f(
        ts.map((t) => t.storedBytes / MIB),
        1,
      ),
      f(
        ts.map((t) => t.takeMs / 1000),
        1,
      ),
    ]);
}

const restoreLine = (what: string, r: Restore | undefined) =>
  r
    ? `${what}: ${(r.restoreMs / 1000).toFixed(1)} s request to running (${(r.imageBytes / MIB).toFixed(1)} MiB from ${r.chain} checkpoint(s); phases ${Object.entries(
        r.phases,
      )
        .map(([k, v]) => `${k} ${(v / 1000).toFixed(1)} s`)
        .join(', ')})`
    : `${what}: -`;

const reps = Number(arg('reps', '1'));
const all: Results[] = [];
for (let i = 1; i <= reps; i++) {
  const r = runOnce();
  all.push(r);
  console.log(
    `rep ${i}: ${r.sizeMiB} MiB workload, ${r.hotMiB} MiB hot set, guard every ${r.intervalSeconds} s (load ${r.loadavg})`,
  );
  const header = ['', 'freeze per checkpoint, ms', 'pages written', 'stored, MiB', 'take, s'];
  console.log(table([header, ...takeRows([...r.baseline, ...r.guard])]));
  console.log(restoreLine('  restore of a full checkpoint (a clone)', r.baselineRestore));
  console.log(restoreLine('  restore from the guard chain after the loss', r.lossRestore));
  if (r.lossRestore) {
    console.log(`  loss confirmed to running on vm-b: ${(r.lossRestore.confirmedToRunningMs / 1000).toFixed(1)} s`);
  }
}
if (reps > 1) {
  const takes = all.flatMap((r) => [...r.baseline, ...r.guard]);
  console.log(`\nover ${reps} reps, medians (every value in brackets):`);
  console.log(table([['', 'freeze, ms', 'pages', 'stored, MiB', 'take, s'], ...takeRows(takes)]));
  const ms = (xs: (Restore | undefined)[]) => xs.filter((x): x is Restore => !!x).map((x) => x.restoreMs / 1000);
  console.log(
    `restore, s: full ${f(ms(all.map((r) => r.baselineRestore)), 1)}; chain ${f(ms(all.map((r) => r.lossRestore)), 1)}`,
  );
}
const inc = all.flatMap((r) => r.guard.filter((t) => t.kind === 'guard incremental'));
const full = all.flatMap((r) => r.guard.filter((t) => t.kind === 'guard full'));
if (inc.length && full.length) {
  console.log(
    `incremental / full guard checkpoint: pages ${(median(inc.map((t) => t.pagesWritten)) / median(full.map((t) => t.pagesWritten))).toFixed(3)}, ` +
      `freeze ${(median(inc.map((t) => t.freezeMs)) / median(full.map((t) => t.freezeMs))).toFixed(3)}, ` +
      `stored ${(median(inc.map((t) => t.storedBytes)) / median(full.map((t) => t.storedBytes))).toFixed(3)}`,
  );
}
