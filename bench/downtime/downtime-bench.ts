/**
 * Downtime benchmark: spotlift's stop-and-copy (REST -> queue -> worker -> SSH -> CRIU) against the bare
 * CRIU command sequence (scripts/lab/bare-migrate.sh: same flags, run directly in the node namespaces),
 * same machine, same run, workloads of 64 MiB, 256 MiB and 1 GiB. Both downtimes use one definition:
 * (restore end - dump end) + CRIU's frozen + freezing time, all measured on the nodes.
 *
 * Page transport: tcp by default here (the bare sequence's page-server is plain TCP: like with like);
 * `--transports tcp,tls` adds spotlift over CRIU's TLS (the API's default) to the same run, to price it.
 *
 *   bash bench/run.sh [--reps N] [--sizes 64,256,1024] [--transports tcp,tls]
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  bareMigrate,
  labUp,
  nodeAddress,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  pidAlive,
  HeartbeatCollector,
  type OrchestratorProcess,
  startBenchOrchestrator,
} from '@spotlift/testing';
import { median } from '../support/stats.js';

const REDIS_PORT = 16390;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function spotliftOnce(
  api: OrchestratorProcess,
  collector: HeartbeatCollector,
  sizeMiB: number,
  transport: string,
): Promise<number> {
  const name = `bench-s-${sizeMiB}-${randomBytes(3).toString('hex')}`;
  const pid = await startWorkload('node-a', { name, memMiB: sizeMiB, udpPort: collector.port });
  await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 120_000 });
  const w = await api.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
  let m = await api.call<MigrationRecord>('POST', '/migrations', {
    workload: w.id,
    destination: 'node-b',
    transport,
  });
  while (!['completed', 'rolled_back', 'failed'].includes(m.state)) {
    await new Promise((r) => setTimeout(r, 100));
    m = await api.call<MigrationRecord>('GET', `/migrations/${m.id}`);
  }
  if (m.restoredPid && pidAlive(m.restoredPid)) await stopWorkload(m.restoredPid);
  if (m.state !== 'completed' || m.downtimeMs === undefined)
    throw new Error(`spotlift migration ${m.state}: ${m.error}`);
  return m.downtimeMs;
}

async function bareOnce(collector: HeartbeatCollector, sizeMiB: number): Promise<{ same: number; seized: number }> {
  const name = `bench-b-${sizeMiB}-${randomBytes(3).toString('hex')}`;
  const pid = await startWorkload('node-a', { name, memMiB: sizeMiB, udpPort: collector.port });
  await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 120_000 });
  const r = await bareMigrate('node-a', 'node-b', pid);
  if (pidAlive(r.restoredPid)) await stopWorkload(r.restoredPid);
  const frozen = (r.criu.frozenMs ?? 0) + (r.criu.freezingMs ?? 0);
  return { same: r.dumpStartToRestoreEndMs - r.dumpMs + frozen, seized: r.downtimeMs };
}

async function main(): Promise<void> {
  const reps = Number(arg('reps', '3'));
  const sizes = arg('sizes', '64,256,1024').split(',').map(Number);
  const transports = arg('transports', 'tcp').split(',');
  await labUp({ nodes: 2 });
  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const api = await startBenchOrchestrator('downtime', REDIS_PORT);
  const rows: string[][] = [
    [
      'size',
      'bare (ms, median)',
      ...transports.flatMap((t) => [`spotlift ${t} (ms, median)`, `${t} / bare`]),
      'bare runs',
      ...transports.map((t) => `${t} runs`),
    ],
  ];
  try {
    for (const size of sizes) {
      const bare: number[] = [];
      const ours = new Map(transports.map((t) => [t, [] as number[]]));
      const spotlift = async (order: string[]) => {
        for (const t of order) ours.get(t)!.push(await spotliftOnce(api, collector, size, t));
      };
      for (let i = 0; i < reps; i++) {
        // Alternate the order so neither side always runs on a warmer machine.
        if (i % 2 === 0) {
          bare.push((await bareOnce(collector, size)).same);
          await spotlift(transports);
        } else {
          await spotlift([...transports].reverse());
          bare.push((await bareOnce(collector, size)).same);
        }
      }
      const runs = (xs: number[]) => xs.map((x) => x.toFixed(0)).join(' ');
      rows.push([
        `${size} MiB`,
        median(bare).toFixed(0),
        ...transports.flatMap((t) => [
          median(ours.get(t)!).toFixed(0),
          `${(median(ours.get(t)!) / median(bare)).toFixed(3)}x`,
        ]),
        runs(bare),
        ...transports.map((t) => runs(ours.get(t)!)),
      ]);
      console.error(`[bench] ${size} MiB done`);
    }
  } finally {
    await api.kill('SIGTERM');
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  console.log('stop-and-copy downtime, spotlift vs bare CRIU sequence (same flags, same machine, same run)');
  for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
  console.log(
    `target: ratio <= 1.05x at 256 MiB and 1 GiB; reps per size: ${reps}; ${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg)`,
  );
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
