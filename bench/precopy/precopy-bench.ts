/**
 * Pre-copy downtime against stop-and-copy on a real distro kernel (the qemu lab: two TCG VMs with Debian 12's
 * cloud kernel, soft-dirty on), bare CRIU, the same workload (256 MiB, 16 MiB hot set) in the same VMs and run:
 * stop-and-copy, pre-copy with the eager restore (stock CRIU's behaviour: every page of the chain copied before
 * resume) and pre-copy with the lazy restore (the lab's CRIU patch, scripts/lab/criu). Each rep is one run of
 * test/qemu/precopy.qemu-spec.ts (fresh VMs); its results file gives the figures. Prints each rep and the
 * medians; the target is pre-copy / stop-and-copy <= 0.15.
 *
 *   bash bench/run.sh precopy [--reps N]       (about 2 minutes a rep)
 *   SPOTLIFT_QEMU_WORKLOAD_MIB=512 SPOTLIFT_QEMU_VM_MIB=2048 bash bench/run.sh precopy   (a larger workload)
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { median } from '../support/stats.js';

interface Result {
  strategy: 'pre-copy' | 'stop-and-copy' | 'pre-copy, lazy restore';
  downtimeMs: number;
  restoreMs: number;
  workloadGapMs: number;
  lazyFillMs?: number;
}

const RESULTS = join(process.env.SPOTLIFT_LAB_DIR ?? '.lab', 'qemu', 'results');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

/** Runs the bare qemu suite once; returns its results file (written by the suite's afterAll). */
function runOnce(): Result[] {
  const started = Date.now();
  const r = spawnSync(
    'npx',
    ['jest', '--selectProjects', 'qemu', '--runInBand', '--forceExit', 'test/qemu/precopy.qemu-spec.ts'],
    { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, NODE_OPTIONS: '--experimental-vm-modules' } },
  );
  if (r.status !== 0) throw new Error(`the qemu pre-copy suite failed (exit ${r.status})`);
  const files = readdirSync(RESULTS)
    .filter((f) => f.startsWith('precopy-'))
    .map((f) => join(RESULTS, f))
    .filter((f) => statSync(f).mtimeMs >= started);
  if (files.length !== 1) throw new Error(`expected one new results file in ${RESULTS}, found ${files.length}`);
  return JSON.parse(readFileSync(files[0]!, 'utf8')) as Result[];
}

const pick = (rs: Result[], s: Result['strategy']): Result => {
  const r = rs.find((x) => x.strategy === s);
  if (!r) throw new Error(`no ${s} result`);
  return r;
};

const reps = Number(arg('reps', '3'));
// The suite's own knobs pass through the environment (SPOTLIFT_QEMU_WORKLOAD_MIB, _HOT_MIB, _VM_MIB, _ROUNDS).
const size = `${process.env.SPOTLIFT_QEMU_WORKLOAD_MIB ?? 256} MiB, ${process.env.SPOTLIFT_QEMU_HOT_MIB ?? 16} MiB hot set`;
const rows: { sc: number; eager: number; lazy: number; gapLazy: number; gapSc: number }[] = [];
for (let i = 1; i <= reps; i++) {
  const rs = runOnce();
  const [sc, eager, lazy] = [pick(rs, 'stop-and-copy'), pick(rs, 'pre-copy'), pick(rs, 'pre-copy, lazy restore')];
  rows.push({
    sc: sc.downtimeMs,
    eager: eager.downtimeMs,
    lazy: lazy.downtimeMs,
    gapLazy: lazy.workloadGapMs,
    gapSc: sc.workloadGapMs,
  });
  console.log(
    `rep ${i}: stop-and-copy ${sc.downtimeMs} ms (restore ${sc.restoreMs}); pre-copy eager ${eager.downtimeMs} ms ` +
      `(restore ${eager.restoreMs}) = ${(eager.downtimeMs / sc.downtimeMs).toFixed(3)}; pre-copy lazy ${lazy.downtimeMs} ms ` +
      `(restore ${lazy.restoreMs}, every page in ${lazy.lazyFillMs} ms later) = ${(lazy.downtimeMs / sc.downtimeMs).toFixed(3)}; ` +
      `workload's longest stall lazy / stop-and-copy ${lazy.workloadGapMs} / ${sc.workloadGapMs} ms`,
  );
}
const ratio = (k: 'eager' | 'lazy') => median(rows.map((r) => r[k] / r.sc));
console.log(
  `\nmedians over ${reps} reps (${size}; target pre-copy / stop-and-copy <= 0.15):\n` +
    `  stop-and-copy ${median(rows.map((r) => r.sc))} ms\n` +
    `  pre-copy, eager restore ${median(rows.map((r) => r.eager))} ms, ratio ${ratio('eager').toFixed(3)}\n` +
    `  pre-copy, lazy restore  ${median(rows.map((r) => r.lazy))} ms, ratio ${ratio('lazy').toFixed(3)} ` +
    `(${ratio('lazy') <= 0.15 ? 'met' : 'not met'})\n` +
    `  workload's longest stall, lazy / stop-and-copy: ${median(rows.map((r) => r.gapLazy / r.gapSc)).toFixed(3)}`,
);
