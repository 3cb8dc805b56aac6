/**
 * Evacuation downtime on the lab with real CRIU (issue 16): three workloads (256, 384, 512 MiB) on node-a,
 * evacuated by `POST /evacuations` under a 120 s and a 30 s notice, once by an orchestrator with today's
 * objective (`finish`, no trials run) and once with `downtime` (missing trials run first when there is slack).
 * Prints per run: total and max downtime, what ran at once, the last migration's end, and evacuation throughput
 * (page bytes moved / seconds from plan to last end) beside bare CRIU measured first in the same run: one
 * `criu dump --page-server` + `criu page-server` stop-and-copy (scripts/lab/bare-migrate.sh) per workload size,
 * node-a -> node-b, one at a time, with the ratio. Figures, not a test.
 *
 *   bash bench/run.sh evacuation-lab [--sizes 256,384,512] [--notices 120,30]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EvacuationRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  bareMigrate,
  HeartbeatCollector,
  labDir,
  labUp,
  nodeAddress,
  pidAlive,
  readLabConfig,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  type OrchestratorProcess,
  startBenchOrchestrator,
} from '@spotlift/testing';

const REDIS_PORT = 6466;
const MIB = 1024 * 1024;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function orchestrator(objective: 'finish' | 'downtime'): Promise<OrchestratorProcess> {
  const config = join(labDir(), 'bench', `evacuation-${objective}.json`);
  const evacuation =
    objective === 'finish' ? { objective, trialBudgetSeconds: 0 } : { objective, trialBudgetSeconds: 20 };
  writeFileSync(config, JSON.stringify({ ...readLabConfig(), evacuation }));
  return startBenchOrchestrator(`evacuation-${objective}`, REDIS_PORT, { SPOTLIFT_CONFIG: config });
}

/** Bare CRIU's throughput on the same pair: pages written / seconds from dump start to restore end, per size. */
interface Bare {
  bytesPerSec: number;
  line: string;
}

async function bareCriu(collector: HeartbeatCollector, sizes: number[]): Promise<Bare> {
  let bytes = 0;
  let seconds = 0;
  let dumpSeconds = 0;
  const each: string[] = [];
  for (const mem of sizes) {
    const name = `bench-bare-${mem}-${Date.now() % 100_000}`;
    const pid = await startWorkload('node-a', { name, memMiB: mem, udpPort: collector.port });
    let restored: number | undefined;
    try {
      await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 180_000 });
      const r = await bareMigrate('node-a', 'node-b', pid);
      restored = r.restoredPid;
      const b = (r.criu.pagesWritten ?? 0) * 4096;
      bytes += b;
      seconds += r.dumpStartToRestoreEndMs / 1000;
      dumpSeconds += r.dumpMs / 1000;
      each.push(`${mem} MiB ${(b / MIB / (r.dumpStartToRestoreEndMs / 1000)).toFixed(0)}`);
    } finally {
      for (const p of [restored, pid]) if (p && pidAlive(p)) await stopWorkload(p);
    }
  }
  const bytesPerSec = bytes / seconds;
  const line =
    `bare CRIU stop-and-copy node-a->node-b (criu dump --page-server + criu page-server + restore, one at a time): ` +
    `${(bytesPerSec / MIB).toFixed(0)} MiB/s dump start to restore end (${each.join(', ')} MiB/s); ` +
    `${(bytes / MIB / dumpSeconds).toFixed(0)} MiB/s over the dumps alone`;
  return { bytesPerSec, line };
}

/** Each move (start to last page in) as the plan predicted it and as it ran, and the mean measured/predicted. */
function moves(e: EvacuationRecord): string {
  const planned = (e.plan as { migrations?: Array<{ workloadId: string; startSeconds?: number }> } | undefined)
    ?.migrations;
  const pairs = (e.executed?.jobs ?? []).flatMap((j) => {
    const start = planned?.find((p) => p.workloadId === j.workloadId)?.startSeconds;
    if (start === undefined || j.predictedFinishSeconds === undefined) return [];
    if (j.startSeconds === undefined || j.finishSeconds === undefined) return [];
    return [[j.predictedFinishSeconds - start, j.finishSeconds - j.startSeconds] as const];
  });
  if (!pairs.length) return 'moves: n/a';
  const ratio = pairs.reduce((s, [p, m]) => s + m / p, 0) / pairs.length;
  return `moves predicted/measured ${pairs.map(([p, m]) => `${p.toFixed(1)}/${m.toFixed(1)}`).join(', ')} s: measured ${ratio.toFixed(2)}x predicted`;
}

/**
 * Post-copy's price per move as the workload felt it: its longest heartbeat silence after resume (the lab
 * workload ticks every 100 ms and touches its hot set each tick, so a silence is a stall on missing pages),
 * beside the record's time to all pages.
 */
function stalls(
  e: EvacuationRecord,
  ms: readonly MigrationRecord[],
  collector: HeartbeatCollector,
  names: ReadonlyMap<string, string>,
): string {
  const lazy = ms.filter((m) => m.resumedAt && (m.strategy === 'post-copy' || m.strategy === 'hybrid'));
  if (!lazy.length) return 'no post-copy move';
  const each = lazy.map((m) => {
    const name = names.get(m.workloadId) ?? '';
    const t = Date.parse(m.resumedAt!);
    const first = collector.heartbeats(name, t)[0]?.at;
    const stall = Math.max(first !== undefined ? first - t : 0, collector.maxGap(name, t).gapMs);
    const fill = e.jobs.find((j) => j.migrationId === m.id)?.timeToAllPagesMs ?? m.postCopy?.pagesAfterResumeMs;
    return `${Math.round(stall)}/${fill !== undefined ? Math.round(fill) : '?'}`;
  });
  return `longest stall after resume (heartbeats) / time to all pages: ${each.join(', ')} ms`;
}

async function once(
  orch: OrchestratorProcess,
  collector: HeartbeatCollector,
  sizes: number[],
  notice: number,
  bare: Bare,
): Promise<string> {
  const pids: number[] = [];
  const names = new Map<string, string>();
  for (const [i, mem] of sizes.entries()) {
    const name = `bench-evac-${notice}-${i}-${Date.now() % 100_000}`;
    const pid = await startWorkload('node-a', { name, memMiB: mem, udpPort: collector.port });
    pids.push(pid);
    await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 180_000 });
    const w = await orch.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
    names.set(w.id, name);
  }
  const { evacuation } = await orch.call<{ evacuation: EvacuationRecord }>('POST', '/evacuations', {
    node: 'node-a',
    secondsUntil: notice,
    reason: 'bench',
  });
  let e = evacuation;
  while (!['completed', 'partial', 'failed'].includes(e.state)) {
    await new Promise((r) => setTimeout(r, 250));
    e = await orch.call<EvacuationRecord>('GET', `/evacuations/${evacuation.id}`);
  }
  const ms = await Promise.all(
    e.jobs.filter((j) => j.migrationId).map((j) => orch.call<MigrationRecord>('GET', `/migrations/${j.migrationId}`)),
  );
  try {
    const x = e.executed;
    const pages = ms.reduce((s, m) => s + m.bytes.pages, 0);
    const elapsed = x?.finishSeconds ?? 0;
    const evacRate = pages / Math.max(elapsed, 1e-9);
    // CRIU's page-server rate is measured by stop-and-copy dumps only (a lazy dump has no memwrite time).
    const criuRates = ms.map((m) => m.throughput?.pagesBytesPerSec ?? 0).filter((r) => r > 0);
    const criu = criuRates.length
      ? `${(criuRates.reduce((a, b) => a + b, 0) / criuRates.length / MIB).toFixed(0)} MiB/s`
      : 'n/a (no stop-and-copy dump)';
    const strategies = [...new Set(ms.map((m) => m.strategy))].join('+');
    const trial = e.events.find((ev) => /post-copy trial/.test(ev.msg))?.msg ?? 'no trial event';
    const calibration = e.events.find((ev) => /model calibrated/.test(ev.msg))?.msg;
    const calibrated = calibration ? calibration.replace(/^model calibrated/, 'calibrated') : 'not calibrated';
    return (
      `${moves(e)} (model ${calibrated}); ${stalls(e, ms, collector, names)}\n      ` +
      `${e.state}, ${e.outcome?.moved ?? 0}/${sizes.length} moved by ${strategies}, up to ${x?.peakConcurrency ?? '?'} at once; ` +
      `downtime total ${Math.round(x?.totalDowntimeMs ?? 0)} ms (predicted ${x?.predictedTotalDowntimeMs ?? '?'}), max ${Math.round(x?.maxDowntimeMs ?? 0)} ms; ` +
      `last end ${elapsed.toFixed(1)} s after the plan; evacuation ${(evacRate / MIB).toFixed(0)} MiB/s ` +
      `= ${(evacRate / bare.bytesPerSec).toFixed(2)}x bare CRIU's ${(bare.bytesPerSec / MIB).toFixed(0)} MiB/s ` +
      `(CRIU page-server inside its migrations: ${criu}) | ${trial.slice(0, 160)}`
    );
  } finally {
    for (const p of [...ms.map((m) => m.restoredPid), ...pids]) if (p && pidAlive(p)) await stopWorkload(p);
    await orch.call('POST', '/nodes/node-a/clear-notice').catch(() => undefined);
  }
}

async function main(): Promise<void> {
  const sizes = arg('sizes', '256,384,512').split(',').map(Number);
  const notices = arg('notices', '120,30').split(',').map(Number);
  await labUp({ nodes: 3 });
  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const lines: string[] = [];
  let bare: Bare | undefined;
  try {
    bare = await bareCriu(collector, sizes);
    console.error(`[bench] ${bare.line}`);
    for (const objective of ['finish', 'downtime'] as const) {
      const orch = await orchestrator(objective);
      try {
        for (const notice of notices) {
          const r = await once(orch, collector, sizes, notice, bare);
          lines.push(`${objective.padEnd(8)} ${String(notice).padStart(3)} s notice: ${r}`);
          console.error(`[bench] ${lines[lines.length - 1]}`);
        }
      } finally {
        await orch.kill('SIGTERM');
      }
    }
  } finally {
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }
  console.log(`evacuation downtime on the lab, real CRIU: workloads ${sizes.join('/')} MiB on node-a`);
  if (bare) console.log(bare.line);
  for (const l of lines) console.log(l);
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
