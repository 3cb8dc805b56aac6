/**
 * Evacuation downtime benchmark, model level (issue 16): 3 workloads of 256-512 MiB on one node under a 120 s
 * and a 30 s notice (and a 14 s one, where one at a time no longer fits), planned three ways on the same calibrated model: the planner's `downtime` objective,
 * the objective before issue 16 (`finish`: save the most, then finish earliest), and the offline best plan
 * (every order x strategy x parallelism, libs/placement/test/exhaustive-plan.ts). Prints total and max
 * downtime, weighted cost, last finish and work saved. Figures, not a test.
 *
 * The model is calibrated on this lab's measurements: one stop-and-copy stream ~300 MiB/s (issue 16: 1.7 s
 * frozen at 512 MiB, 0.84 s at 256 MiB), 1.5 s of fixed cost per migration, 0.1 s post-copy freeze (bench
 * postcopy: ~0.24-0.3 s measured), parallel dumps on one source slowing each other by 1.25 per extra dump
 * (issue 16: three at once froze 5.6-6.1 s each). Pass --contention, --stream-mibps, --overhead to change it.
 *
 * Run: bash bench/run.sh evacuation [--contention=1.25] [--stream-mibps=300] [--overhead=1.5]
 */
import {
  planEvacuation,
  type EvacuationInput,
  type EvacuationPlan,
  type PlacementWorkload,
  type PostCopyTrial,
} from '@spotlift/placement';
import { exhaustiveBest } from '../../libs/placement/test/exhaustive-plan.js';

const MIB = 1024 * 1024;

function arg(name: string, fallback: number): number {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  const v = hit ? Number(hit.slice(name.length + 3)) : fallback;
  if (!Number.isFinite(v)) throw new Error(`--${name} must be a number`);
  return v;
}

const stream = arg('stream-mibps', 300) * MIB;
const model = {
  contention: arg('contention', 1.25),
  overhead: arg('overhead', 1.5),
  margin: 5,
};

function input(
  noticeSeconds: number,
  workloads: PlacementWorkload[],
  trial: PostCopyTrial,
  objective: 'downtime' | 'finish',
): EvacuationInput {
  return {
    deadlineSeconds: noticeSeconds - model.margin,
    source: { id: 'node-a', cpu: {}, softDirty: false },
    sourceOutboundBytesPerSec: 1000 * MIB,
    perMigrationMaxBytesPerSec: stream,
    perMigrationOverheadSeconds: model.overhead,
    parallelDumpSlowdown: model.contention,
    objective,
    workloads,
    // As the orchestrator plans (evacuation-input.ts): the model's nodes carry no CPU flags.
    placement: { allowUnverifiedCpu: true },
    destinations: [
      {
        id: 'node-b',
        state: 'ready',
        criuOk: true,
        freeMemoryBytes: 32 * 1024 * MIB,
        cpu: {},
        lifecycle: 'on-demand',
        labels: {},
        bandwidthFromSourceBytesPerSec: stream,
        postCopyTrial: trial,
      },
    ],
  };
}

const w = (id: string, mib: number, priority = 5): PlacementWorkload => ({
  id,
  memoryBytes: mib * MIB,
  dirtyRateBytesPerSec: 5 * MIB,
  priority,
});
const cases: Array<{ name: string; workloads: PlacementWorkload[] }> = [
  { name: "issue 16's 3 x 512 MiB", workloads: [w('w1', 512), w('w2', 512), w('w3', 512)] },
  { name: '256/384/512 MiB, priorities 9/5/2', workloads: [w('w1', 256, 9), w('w2', 384, 5), w('w3', 512, 2)] },
];

const s = (x: number): string => x.toFixed(2).padStart(6);
function row(label: string, p: EvacuationPlan): string {
  const saved = p.migrations.filter((m) => !m.willMiss).length;
  const o = p.objective;
  const strategies = [...new Set(p.migrations.filter((m) => !m.willMiss).map((m) => m.strategy))].join('+');
  return `  ${label.padEnd(22)} saved ${saved}/${p.migrations.length}  downtime total ${s(o.totalDowntimeSeconds)} s  max ${s(o.maxDowntimeSeconds)} s  weighted ${s(o.weightedCostSeconds)}  finish ${s(o.makespanSeconds)} s  up to ${p.peakConcurrency} at once  ${strategies}`;
}

console.log(
  `evacuation downtime benchmark (model): stream ${stream / MIB} MiB/s, ${model.overhead} s fixed cost, contention ${model.contention}, margin ${model.margin} s`,
);
for (const c of cases) {
  for (const notice of [120, 30, 14]) {
    for (const trial of ['untested', 'ok'] as const) {
      const now = planEvacuation(input(notice, c.workloads, trial, 'downtime'));
      const today = planEvacuation(input(notice, c.workloads, 'untested', 'finish'));
      const best = exhaustiveBest(input(notice, c.workloads, trial, 'downtime'));
      console.log(`${c.name}, ${notice} s notice, post-copy trial ${trial}:`);
      console.log(row('planner (downtime)', now));
      console.log(row("today's plan (finish)", today));
      console.log(
        `  ${'offline best'.padEnd(22)} downtime total ${s(best.totalDowntimeSeconds)} s  weighted ${s(best.weightedCostSeconds)}  order ${best.order.join(',')} k=${best.parallelism} (${best.plansTried} plans)`,
      );
      console.log(
        `  ratios: planner/best weighted ${(now.objective.weightedCostSeconds / best.weightedCostSeconds).toFixed(3)}x; ` +
          `today/planner total downtime ${(today.objective.totalDowntimeSeconds / now.objective.totalDowntimeSeconds).toFixed(1)}x`,
      );
    }
  }
}
