/**
 * Evacuation downtime on the lab with real CRIU (issue 16): three workloads (256, 384, 512 MiB) on node-a,
 * evacuated by `POST /evacuations` under a 120 s and a 30 s notice, once by an orchestrator with today's
 * objective (`finish`, no trials run) and once with `downtime` (missing trials run first when there is slack).
 * Prints per run: total and max downtime, what ran at once, the last migration's end, and evacuation throughput
 * (page bytes moved / seconds from plan to last end) beside CRIU's own page-server rate inside the same
 * migrations (pages / memwrite time). Figures, not a test.
 *
 *   bash bench/run.sh evacuation-lab [--sizes 256,384,512] [--notices 120,30]
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EvacuationRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
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

async function once(
  orch: OrchestratorProcess,
  collector: HeartbeatCollector,
  sizes: number[],
  notice: number,
): Promise<string> {
  const pids: number[] = [];
  for (const [i, mem] of sizes.entries()) {
    const name = `bench-evac-${notice}-${i}-${Date.now() % 100_000}`;
    const pid = await startWorkload('node-a', { name, memMiB: mem, udpPort: collector.port });
    pids.push(pid);
    await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 180_000 });
    await orch.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
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
    // CRIU's page-server rate is measured by stop-and-copy dumps only (a lazy dump has no memwrite time).
    const criuRates = ms.map((m) => m.throughput?.pagesBytesPerSec ?? 0).filter((r) => r > 0);
    const criu = criuRates.length
      ? `${(criuRates.reduce((a, b) => a + b, 0) / criuRates.length / MIB).toFixed(0)} MiB/s`
      : 'n/a (no stop-and-copy dump)';
    const strategies = [...new Set(ms.map((m) => m.strategy))].join('+');
    const trial = e.events.find((ev) => /post-copy trial/.test(ev.msg))?.msg ?? 'no trial event';
    return (
      `${e.state}, ${e.outcome?.moved ?? 0}/${sizes.length} moved by ${strategies}, up to ${x?.peakConcurrency ?? '?'} at once; ` +
      `downtime total ${Math.round(x?.totalDowntimeMs ?? 0)} ms (predicted ${x?.predictedTotalDowntimeMs ?? '?'}), max ${Math.round(x?.maxDowntimeMs ?? 0)} ms; ` +
      `last end ${elapsed.toFixed(1)} s after the plan; evacuation ${(pages / MIB / Math.max(elapsed, 1e-9)).toFixed(0)} MiB/s ` +
      `vs CRIU page-server ${criu} (mean over its migrations) | ${trial.slice(0, 160)}`
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
  try {
    for (const objective of ['finish', 'downtime'] as const) {
      const orch = await orchestrator(objective);
      try {
        for (const notice of notices) {
          const r = await once(orch, collector, sizes, notice);
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
  for (const l of lines) console.log(l);
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
