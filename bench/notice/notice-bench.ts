/**
 * Notice-to-first-freeze latency: from the moment the fake IMDS starts serving a Spot interruption notice
 * to the moment the first workload of the resulting evacuation is frozen on node-a. Everything real but
 * the metadata service: the orchestrator (the built one, as a child process), its SSH poll of node-a's IMDS (curl on the
 * node), Redis, BullMQ, CRIU. Each trial uses a fresh orchestrator (its own Redis prefix), because a
 * notice is deduplicated per node for 10 minutes and a node that got one stays terminating.
 *
 *   bash bench/run.sh notice [--trials 20] [--poll-ms 250] [--mem-mib 16] [--fleet 1000] [--sim-procs 4]
 *                            [--orchestrators 1]
 *
 * `--fleet N`: the orchestrator also watches N simulated nodes (bench/scale/sim: real SSH servers on loopback, one
 * metadata watch loop each, drained so that none is a destination), so both halves of the notice-to-first-freeze
 * target at fleet scale are measured in one run: the orchestrator's under the load of N watched nodes, the nodes'
 * with real CRIU on the lab nodes. The same trials run first with the lab's three nodes alone: the baseline, in
 * the same run, and the ratio of the two. `--orchestrators 2`: two replicas of one deployment (the watches sharded
 * between them, either one's worker may run the evacuation).
 *
 * Stages, each measured from the notice's appearance: detected (the watcher parsed it), evacuation
 * recorded, first migration recorded, its preflight / prepare / dump phases started, and frozenAt (the source tasks stopped,
 * from CRIU's own freeze time on the node: the real "first freeze").
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvacuationRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  FakeImdsServer,
  LAB_HOST_ADDRESS,
  HeartbeatCollector,
  labUp,
  pidAlive,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  startBenchReplicas,
  type LabConfig,
  type OrchestratorProcess,
} from '@spotlift/testing';
import { Sim, simNodeSpecs, untilFleetWatched } from '../scale/sim/fleet-sim.js';

const REDIS_PORT = arg('redis-port', 16399);
const FLEET = arg('fleet', 0);
const SIM_PORT = arg('sim-port', 2222);
const REPLICAS = arg('orchestrators', 1);
const STAGES = ['detected', 'evacuation', 'migration', 'preflight', 'prepare', 'dumpStart', 'frozenAt'] as const;
type Stage = (typeof STAGES)[number];

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i > 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
}

/** Nearest-rank percentile. */
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)]!;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The lab's orchestrator with node-a's metadata served by the fake IMDS, polled every `pollMs`; with a simulated
 * fleet, every simulated node watched and drained before it returns (ms it took in `bootMs`).
 */
async function startApp(
  lab: LabConfig,
  imdsUrl: string,
  pollMs: number,
  trial: number,
  sim?: Sim,
): Promise<{ orchs: OrchestratorProcess[]; bootMs: number }> {
  const started = Date.now();
  const path = join(tmpdir(), `spotlift-notice-bench-${process.pid}.json`);
  const nodes = [
    ...lab.nodes.map((n) => (n.id === 'node-a' ? { ...n, metadata: { provider: 'aws', baseUrl: imdsUrl } } : n)),
    ...(sim ? simNodeSpecs(FLEET, SIM_PORT, sim.hostKey) : []),
  ];
  // No post-copy trials, ahead of the notice or at it: a fresh installation per trial has none stored, and with
  // slack the planner spends up to `trialBudgetSeconds` (15 s) running them before the first move, by design. In a
  // running installation they were run ahead (`trialRefreshSeconds`); this measures that path.
  const evacuation = { trialRefreshSeconds: 0, trialBudgetSeconds: 0 };
  writeFileSync(path, JSON.stringify({ ...lab, nodes, evacuation }));
  const orchs = await startBenchReplicas(
    `notice-${trial}`,
    REDIS_PORT,
    { SPOTLIFT_CONFIG: path, SPOTLIFT_NOTICE_POLL_MS: String(pollMs) },
    REPLICAS,
  );
  if (sim) {
    try {
      await untilFleetWatched(sim, FLEET);
      await drainAll(orchs[0]!, FLEET);
    } catch (error) {
      await Promise.all(orchs.map((o) => o.kill('SIGTERM')));
      throw error;
    }
  }
  return { orchs, bootMs: Date.now() - started };
}

/** Every simulated node drained (no placement lands on it; it is still watched), 16 requests at a time. */
async function drainAll(orch: OrchestratorProcess, n: number): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let i = next++; i < n; i = next++) {
        // A node still registering (its probe not stored yet) is not drained yet: asked again.
        await poll(async () => {
          const r = await orch.api<{ state: string }>('POST', `/nodes/sim-${i}/drain`);
          return r.status === 200 && r.body.state === 'draining' ? true : undefined;
        }, 30_000);
      }
    }),
  );
}

async function poll<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error('timed out');
    await sleep(20);
  }
}

async function trial(
  lab: LabConfig,
  imds: FakeImdsServer,
  collector: HeartbeatCollector,
  opts: { pollMs: number; memMiB: number },
  i: number,
  sim?: Sim,
): Promise<Row> {
  const { orchs, bootMs } = await startApp(lab, imds.url, opts.pollMs, i, sim);
  // The API of any replica serves the records the bench reads.
  const orch = orchs[0]!;
  const pids: number[] = [];
  try {
    const name = `notice-bench-${i}`;
    const pid = await startWorkload('node-a', { name, memMiB: opts.memMiB, udpPort: collector.port });
    pids.push(pid);
    await orch.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });
    const tokens = imds.tokensIssued;
    await poll(() => Promise.resolve(imds.tokensIssued > tokens || imds.requestCount() > 0 ? true : undefined), 10_000);
    // A random phase against the poll period, so the trials sample the whole polling delay.
    await sleep(500 + Math.random() * opts.pollMs);
    const t0 = Date.now();
    imds.setSpotInterruption({ action: 'terminate', time: new Date(t0 + 120_000) });
    const evac = await poll(async () => (await orch.call<EvacuationRecord[]>('GET', '/evacuations'))[0], 10_000);
    const migrationId = await poll(
      async () =>
        (await orch.call<EvacuationRecord>('GET', `/evacuations/${evac.id}`)).jobs.find((j) => j.migrationId)
          ?.migrationId,
      10_000,
    );
    const m = await poll(async () => {
      const r = await orch.call<MigrationRecord>('GET', `/migrations/${migrationId}`);
      return ['completed', 'rolled_back', 'failed', 'cancelled'].includes(r.state) ? r : undefined;
    }, 60_000);
    if (m.restoredPid) pids.push(m.restoredPid);
    if (m.state !== 'completed' || !m.frozenAt)
      throw new Error(`trial ${i}: migration ${m.id} ended ${m.state}: ${m.error ?? ''}`);
    const at = (iso: string) => new Date(iso).getTime() - t0;
    return {
      bootMs,
      detected: at(evac.notice.receivedAt),
      evacuation: at(evac.createdAt),
      migration: at(m.createdAt),
      preflight: at(phase(m, 'preflight')),
      prepare: at(phase(m, 'prepare')),
      dumpStart: at(phase(m, 'dump')),
      frozenAt: at(m.frozenAt),
    };
  } finally {
    imds.clearSpotInterruption();
    await Promise.all(orchs.map((o) => o.kill('SIGTERM')));
    for (const pid of pids) if (pidAlive(pid)) await stopWorkload(pid);
  }
}

/** When a phase of the migration started (the engine records it as it enters the phase). */
function phase(m: MigrationRecord, name: string): string {
  const p = m.phases.find((x) => x.name === name);
  if (!p) throw new Error(`migration ${m.id} has no ${name} phase`);
  return p.startedAt;
}

type Row = Record<Stage, number> & { bootMs: number };

/** The stage table of one set of trials; its frozenAt p99. */
function report(title: string, rows: Row[]): number {
  console.log(`\n${title}`);
  console.log('stage (ms after the notice appeared)   p50    p99    max');
  for (const s of STAGES) {
    const xs = rows.map((r) => r[s]);
    console.log(
      `${s.padEnd(38)} ${String(pct(xs, 50)).padStart(5)}  ${String(pct(xs, 99)).padStart(5)}  ${String(Math.max(...xs)).padStart(5)}`,
    );
  }
  return pct(
    rows.map((r) => r.frozenAt),
    99,
  );
}

async function main(): Promise<void> {
  const trials = arg('trials', 20);
  const pollMs = arg('poll-ms', 250);
  const memMiB = arg('mem-mib', 16);
  const lab = await labUp({ nodes: 3 });
  await startRedis(REDIS_PORT);
  const imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
  const collector = new HeartbeatCollector();
  await collector.start();
  const sim = FLEET ? await Sim.start(FLEET, arg('sim-procs', 4), SIM_PORT) : undefined;
  // With a fleet, the baseline first, in the same run: the same trials with the lab's three nodes alone.
  const sets = sim ? [{ sim: undefined }, { sim }] : [{ sim: undefined }];
  const results: Row[][] = [];
  try {
    for (const set of sets) {
      const rows: Row[] = [];
      for (let i = 0; i < trials; i++) {
        const r = await trial(lab, imds, collector, { pollMs, memMiB }, results.length * trials + i, set.sim);
        rows.push(r);
        const nodes = set.sim ? `${FLEET} simulated + 3 lab nodes` : '3 lab nodes';
        console.log(
          `trial ${String(i + 1).padStart(3)}: ${STAGES.map((s) => `${s} ${r[s]} ms`).join(', ')} (${REPLICAS} orchestrator(s), ${nodes}, ready ${(r.bootMs / 1000).toFixed(1)} s)`,
        );
      }
      results.push(rows);
    }
  } finally {
    sim?.stop();
    await collector.stop();
    await imds.stop();
    await stopRedis(REDIS_PORT);
  }
  const what = `${trials} trials, IMDS poll every ${pollMs} ms over SSH, ${memMiB} MiB workload, ${REPLICAS} orchestrator(s)`;
  const base = report(`notice-to-first-freeze, ${what}, watching the 3 lab nodes`, results[0]!);
  const p99 = sim
    ? report(
        `notice-to-first-freeze, ${what}, watching ${FLEET} simulated nodes (stream mode, drained) + the 3 lab nodes`,
        results[1]!,
      )
    : base;
  if (sim) {
    const p50 = (rows: Row[]) =>
      pct(
        rows.map((r) => r.frozenAt),
        50,
      );
    console.log(
      `\nfrozenAt at ${FLEET} + 3 nodes / at 3 nodes: p50 x${(p50(results[1]!) / p50(results[0]!)).toFixed(2)}, p99 x${(p99 / base).toFixed(2)}`,
    );
  }
  console.log(
    `target p99 <= 1000 ms (frozenAt${sim ? `, ${FLEET} + 3 nodes` : ''}): ${p99 <= 1000 ? 'met' : 'NOT met'} (${p99} ms)`,
  );
  console.log(
    JSON.stringify({
      trials,
      pollMs,
      memMiB,
      fleet: FLEET,
      orchestrators: REPLICAS,
      baseline: results[0],
      rows: results[1] ?? results[0],
    }),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
