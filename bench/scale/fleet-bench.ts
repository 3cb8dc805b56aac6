/**
 * Notice-to-first-freeze at fleet scale: the BUILT orchestrator (one process, then two sharing the watch shards)
 * against N simulated nodes (sim/fleet-sim-child.ts: real SSH servers on loopback, simulated IMDS, see there
 * what is simulated), every node watched in stream mode (one loop per node, AWS, 250 ms), one workload
 * registered per node over REST. Baseline in the same run: a small fleet (default 30) with the same steps.
 *
 *   bash bench/run.sh scale --fleet [--nodes 1000] [--baseline 30] [--ks 1,10,50] [--orchestrators 1,2]
 *                                   [--sim-procs 4] [--jobs 200] [--worker-concurrency N] [--redis-timeout-ms N]
 *
 * Per fleet size and orchestrator count: idle (10 s, everything watched) and under notices: orchestrator CPU
 * (all processes, % of one core), RSS (each), event-loop lag p99 (prom-client's, over the window, worst
 * process), Redis commands/s (INFO commandstats delta, every client). Notices on k nodes at once: the time
 * from the simulated IMDS serving the notice to the first migration command reaching the noticed node (the
 * preflight's tree inspection on the source; the real freeze comes after preflight, prepare and the dump's
 * start, which run on the node: `bash bench/run.sh notice` measures those with CRIU). Then, on a fleet with room
 * for them, `--jobs` migrations POSTed at once (see postJobs). Also per run: the boot's CPU and lag, and the
 * orchestrators' handshake and Redis time-outs as their logs count them.
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { OrchestratorProcess, builtOrchestratorMain, labDir, startRedis, stopRedis } from '@spotlift/testing';
import { Sim, simNodeSpecs, untilFleetWatched, type SimStatus } from './sim/fleet-sim.js';

const args = process.argv.slice(2);
function opt(name: string, fallback: string): string {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
}
const NODES = Number(opt('nodes', '1000'));
const BASELINE = Number(opt('baseline', '30'));
const KS = opt('ks', '1,10,50').split(',').map(Number);
const REDIS_PORT = Number(opt('redis-port', '6473'));
const SSH_PORT = Number(opt('ssh-port', '2222'));
const SIM_PROCS = Number(opt('sim-procs', '4'));
const COUNTS = opt('orchestrators', '1,2').split(',').map(Number);
/** Migrations posted at once on the large fleet (0: none), and the worker concurrency (env default: 4). */
const JOBS = Number(opt('jobs', '200'));
const WORKER_CONCURRENCY = opt('worker-concurrency', '');
/** The orchestrators' Redis command timeout (SPOTLIFT_REDIS_COMMAND_TIMEOUT_MS; empty: their default, 1 s). */
const REDIS_TIMEOUT_MS = opt('redis-timeout-ms', '');
const IDLE_S = 10;
/** Samples wanted per k (rounds = ceil(samples / k)), and nodes always left ready as destinations. */
const SAMPLES = 10;
const SPARE = 8;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Nearest-rank percentile. */
function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

/** prom-client's figures of one orchestrator now (reading resets its event-loop histogram). */
async function scrape(o: OrchestratorProcess): Promise<{ cpuS: number; rssMiB: number; lagP99Ms: number }> {
  const text = await (await fetch(`${o.baseUrl}/metrics`, { headers: { authorization: `Bearer ${o.token}` } })).text();
  const metric = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    cpuS: metric('process_cpu_seconds_total'),
    rssMiB: metric('process_resident_memory_bytes') / 2 ** 20,
    lagP99Ms: metric('nodejs_eventloop_lag_p99_seconds') * 1000,
  };
}

async function redisCalls(redis: Redis): Promise<number> {
  const info = await redis.info('commandstats');
  return [...info.matchAll(/calls=(\d+)/g)].reduce((a, m) => a + Number(m[1]), 0);
}

interface Window {
  cpuPct: number;
  rssMiB: number[];
  lagP99Ms: number;
  /** The same p99 in an idle process on this machine over the same window (lag-probe-child.ts). */
  controlLagP99Ms: number;
  redisOps: number;
}

/** The idle control process (see lag-probe-child.ts). */
class LagProbe {
  private constructor(private readonly child: ChildProcess) {}

  static async start(): Promise<LagProbe> {
    const child = fork(fileURLToPath(new URL('./lag-probe-child.js', import.meta.url)));
    await new Promise((resolve) => child.once('message', resolve));
    return new LagProbe(child);
  }

  read(): Promise<{ p99Ms: number; maxMs: number }> {
    return new Promise((resolve) => {
      this.child.once('message', resolve);
      this.child.send('read');
    });
  }

  stop(): void {
    this.child.disconnect();
  }
}

let control: LagProbe;

/** Measures the orchestrators over `fn` (CPU summed over processes, lag the worst one's, Redis all clients). */
async function windowOf(orchs: OrchestratorProcess[], redis: Redis, fn: () => Promise<void>): Promise<Window> {
  const before = await Promise.all(orchs.map(scrape));
  const calls0 = await redisCalls(redis);
  await control.read();
  const t0 = Date.now();
  await fn();
  const controlLag = await control.read();
  const secs = (Date.now() - t0) / 1000;
  const after = await Promise.all(orchs.map(scrape));
  // Minus this bench's own INFO call.
  const calls = (await redisCalls(redis)) - calls0 - 1;
  return {
    cpuPct: (after.reduce((a, x, i) => a + x.cpuS - before[i]!.cpuS, 0) / secs) * 100,
    rssMiB: after.map((x) => x.rssMiB),
    lagP99Ms: Math.max(...after.map((x) => x.lagP99Ms)),
    controlLagP99Ms: controlLag.p99Ms,
    redisOps: calls / secs,
  };
}

let unavailable = 0;

/** POST /workloads; a 503 (Redis slow to answer under the bench's load) is counted and retried, up to 5 times. */
async function register(o: OrchestratorProcess, i: number, pid: number): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    const res = await o.api<{ id: string }>('POST', '/workloads', { name: `w-${i}`, node: `sim-${i}`, pid });
    if (res.status < 300) return res.body.id;
    if (res.status !== 503 || attempt >= 5)
      throw new Error(`POST /workloads: ${res.status} ${JSON.stringify(res.body)}`);
    unavailable++;
    await sleep(1_000);
  }
}

/** The 200 migrations posted at once: POST latency, enqueue -> first command at the source, the window. */
interface JobsResult {
  posted: number;
  refused: string[];
  postMs: number[];
  firstMs: number[];
  missed: number;
  window: Window;
}

/**
 * POSTs one migration per source at once (sources' workloads to the next source's node), spread over the
 * orchestrators, and waits (60 s at most) for each source to see the first command of its job (the one after the
 * POST's own tree inspection), which the armed simulated node records and refuses: each job ends in preflight,
 * nothing is frozen or copied (no CRIU here).
 */
async function postJobs(
  sim: Sim,
  orchs: OrchestratorProcess[],
  redis: Redis,
  sources: number[],
  workloads: string[],
): Promise<JobsResult> {
  const ids = sources.map((i) => `sim-${i}`);
  // The POST inspects the tree itself (MigrationsService.record): served; the worker's command is recorded.
  await sim.arm(ids, 1);
  const sentAt: number[] = [];
  const postMs: number[] = [];
  const refused: string[] = [];
  let st: SimStatus | undefined;
  const window = await windowOf(orchs, redis, async () => {
    await Promise.all(
      sources.map(async (src, j) => {
        const body = { workload: workloads[src], destination: `sim-${sources[(j + 1) % sources.length]}` };
        sentAt[j] = Date.now();
        // A reset connection (200 requests at once on a loaded orchestrator) counts as refused, with its reason.
        const res = await orchs[j % orchs.length]!.api('POST', '/migrations', body).catch((e: unknown) => ({
          status: 0,
          body: String((e as Error).cause ?? e),
        }));
        postMs[j] = Date.now() - sentAt[j];
        if (res.status >= 300 || res.status === 0)
          refused.push(`${res.status} ${JSON.stringify(res.body).slice(0, 120)}`);
      }),
    );
    const until = Date.now() + 60_000;
    st = await sim.status();
    while (ids.some((id) => st!.firstAt[id] === undefined) && Date.now() < until) {
      await sleep(200);
      st = await sim.status();
    }
  });
  const firstMs = ids.flatMap((id, j) => (st!.firstAt[id] === undefined ? [] : [st!.firstAt[id] - sentAt[j]!]));
  return { posted: sources.length, refused, postMs, firstMs, missed: ids.length - firstMs.length, window };
}

/** Lines of an orchestrator's log that say `what`. */
function logCount(o: OrchestratorProcess, what: RegExp): number {
  try {
    return readFileSync(o.logFile, 'utf8')
      .split('\n')
      .filter((l) => what.test(l)).length;
  } catch {
    return NaN;
  }
}

interface Row {
  fleet: number;
  orchestrators: number;
  bootS: number;
  /** Over the boot (start to every node watched): CPU (all processes) and the worst event-loop lag p99. */
  boot: { cpuPct: number; lagP99Ms: number };
  /** Log lines over the whole run: handshake time-outs, Redis command time-outs, warnings and errors. */
  logs: { handshakeTimeouts: number; redisTimeouts: number; warnings: number };
  jobs?: JobsResult;
  idle: Window;
  load: Window;
  perK: { k: number; ms: number[]; missed: number; stages: Stages }[];
}

/**
 * Where a notice's time went, per noticed node (ms), from its evacuation record's own times: `seen` the watch
 * (IMDS serving it -> the notice's receivedAt), `raised` the intake (-> the record's createdAt), `planned` the
 * queue and the plan (-> plannedAt), `recorded` the migration's start (the source's tree inspected, the destination
 * chosen, the record saved: -> its createdAt), `started` queued, picked up by a worker and preflight begun (-> its
 * first command at the source).
 */
interface Stages {
  seen: number[];
  raised: number[];
  planned: number[];
  recorded: number[];
  started: number[];
}

/** The last events of a node's newest evacuation, for a notice that reached no first command. */
async function lastEvents(redis: Redis, prefix: string, nodeId: string): Promise<string> {
  const [evacuationId] = await redis.zrange(`${prefix}:evacuations:node=${nodeId}`, -1, -1);
  const raw = evacuationId ? await redis.get(`${prefix}:evacuation:${evacuationId}`) : null;
  if (!raw) return 'no evacuation recorded';
  const e = JSON.parse(raw) as { state: string; events: { msg: string }[] };
  return `evacuation ${e.state}: ${e.events
    .slice(-4)
    .map((x) => x.msg.slice(0, 200))
    .join(' | ')}`;
}

/** Adds the stages of each noticed node that reached its first command (its evacuation read from Redis). */
async function addStages(stages: Stages, redis: Redis, prefix: string, ids: string[], s: SimStatus): Promise<void> {
  for (const id of ids) {
    const firstAt = s.firstAt[id];
    const ms = s.freezes[id];
    if (firstAt === undefined || ms === undefined) continue;
    const [evacuationId] = await redis.zrange(`${prefix}:evacuations:node=${id}`, -1, -1);
    const raw = evacuationId ? await redis.get(`${prefix}:evacuation:${evacuationId}`) : null;
    if (!raw) continue;
    const e = JSON.parse(raw) as {
      notice: { receivedAt: string };
      createdAt: string;
      plannedAt?: string;
      jobs: { workloadId: string }[];
    };
    // The workload's first migration (a job tried again names its last one).
    const workloadId = e.jobs[0]?.workloadId;
    const [migrationId] = workloadId ? await redis.zrange(`${prefix}:migrations:workload=${workloadId}`, 0, 0) : [];
    const m = migrationId ? await redis.get(`${prefix}:migration:${migrationId}`) : null;
    const recorded = m ? Date.parse((JSON.parse(m) as { createdAt: string }).createdAt) : NaN;
    const servedAt = firstAt - ms;
    const received = Date.parse(e.notice.receivedAt);
    const created = Date.parse(e.createdAt);
    const planned = e.plannedAt ? Date.parse(e.plannedAt) : NaN;
    stages.seen.push(received - servedAt);
    stages.raised.push(created - received);
    if (Number.isFinite(planned) && Number.isFinite(recorded)) {
      stages.planned.push(planned - created);
      stages.recorded.push(recorded - planned);
      stages.started.push(firstAt - recorded);
    }
  }
}

async function run(sim: Sim, fleet: number, count: number, redis: Redis): Promise<Row> {
  const keyPath = join(tmpdir(), `spotlift-fleet-bench-${process.pid}.key`);
  rmSync(keyPath, { force: true });
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  const nodes = simNodeSpecs(fleet, SSH_PORT, sim.hostKey);
  const configPath = join(tmpdir(), `spotlift-fleet-bench-${process.pid}.json`);
  // No post-copy trials, ahead of notices or at one (a trial at a notice spends up to trialBudgetSeconds of the
  // notice's slack before the first freeze, by design; the simulated nodes could not run one anyway).
  const evacuation = { trialRefreshSeconds: 0, trialBudgetSeconds: 0 };
  writeFileSync(configPath, JSON.stringify({ ssh: { privateKeyPath: keyPath }, nodes, evacuation }));
  const prefix = `fleet${fleet}x${count}${Date.now().toString(36)}`;
  const orchs = Array.from(
    { length: count },
    () =>
      new OrchestratorProcess(
        builtOrchestratorMain(),
        REDIS_PORT,
        {
          SPOTLIFT_CONFIG: configPath,
          SPOTLIFT_LOG_LEVEL: 'warn',
          ...(WORKER_CONCURRENCY ? { SPOTLIFT_WORKER_CONCURRENCY: WORKER_CONCURRENCY } : {}),
          ...(REDIS_TIMEOUT_MS ? { SPOTLIFT_REDIS_COMMAND_TIMEOUT_MS: REDIS_TIMEOUT_MS } : {}),
        },
        prefix,
        { logDir: join(labDir(), 'bench') },
      ),
  );
  await sim.reset();
  const logs: Row['logs'] = { handshakeTimeouts: 0, redisTimeouts: 0, warnings: 0 };
  const t0 = Date.now();
  try {
    await Promise.all(orchs.map((o) => o.start()));
    // Every node watched by one loop, steady for 3 s (two replicas first share the shards out).
    await untilFleetWatched(sim, fleet);
    const bootS = (Date.now() - t0) / 1000;
    const atBoot = await Promise.all(orchs.map(scrape));
    const boot = {
      cpuPct: (atBoot.reduce((a, x) => a + x.cpuS, 0) / bootS) * 100,
      lagP99Ms: Math.max(...atBoot.map((x) => x.lagP99Ms)),
    };
    // One workload per node (a stand-in process of this host, inspected for real by the simulated node).
    let next = 0;
    const workloads: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        for (let i = next++; i < fleet; i = next++)
          workloads[i] = await register(orchs[i % count]!, i, await sim.standIn());
      }),
    );
    console.log(
      `  ${fleet} nodes, ${count} orchestrator(s): all watched after ${bootS.toFixed(1)} s; workloads registered`,
    );
    const idle = await windowOf(orchs, redis, () => sleep(IDLE_S * 1000));
    const perK: Row['perK'] = [];
    let used = 0;
    const load = await windowOf(orchs, redis, async () => {
      for (const k of KS) {
        const rounds = Math.ceil(SAMPLES / k);
        if (used + rounds * k > fleet - SPARE) continue;
        const entry = {
          k,
          ms: [] as number[],
          missed: 0,
          stages: { seen: [], raised: [], planned: [], recorded: [], started: [] } as Stages,
        };
        for (let r = 0; r < rounds; r++) {
          const ids = Array.from({ length: k }, (_, j) => `sim-${used + j}`);
          used += k;
          // The first tree inspection at a noticed node is its migration job's preflight (the evacuation records the
          // migration without one): recorded.
          await sim.notice(ids, 0);
          const until = Date.now() + 15_000;
          let s = await sim.status();
          while (ids.some((id) => s.freezes[id] === undefined) && Date.now() < until) {
            await sleep(50);
            s = await sim.status();
          }
          for (const id of ids) {
            const ms = s.freezes[id];
            if (ms === undefined) {
              entry.missed++;
              console.log(
                `    ${id}: no first command within 15 s of its notice; ${await lastEvents(redis, prefix, id)}`,
              );
            } else entry.ms.push(ms);
          }
          await addStages(entry.stages, redis, prefix, ids, s);
          await sleep(1_000);
        }
        perK.push(entry);
      }
    });
    const s = await sim.status();
    console.log(
      `    first commands seen after a notice: ${JSON.stringify(s.freezeCommands.map((c) => c.slice(0, 40)))}`,
    );
    // The migrations posted at once, from nodes no notice touched (the last ones), on a fleet large enough.
    let jobs: JobsResult | undefined;
    if (JOBS > 0 && fleet - used - SPARE >= JOBS) {
      await sleep(2_000);
      const sources = Array.from({ length: JOBS }, (_, j) => fleet - JOBS + j);
      jobs = await postJobs(sim, orchs, redis, sources, workloads);
    }
    return { fleet, orchestrators: count, bootS, boot, logs, ...(jobs ? { jobs } : {}), idle, load, perK };
  } finally {
    await Promise.all(orchs.map((o) => o.kill('SIGTERM')));
    logs.handshakeTimeouts = orchs.reduce((a, o) => a + logCount(o, /Timed out while waiting for handshake/), 0);
    logs.redisTimeouts = orchs.reduce((a, o) => a + logCount(o, /Command timed out/), 0);
    logs.warnings = orchs.reduce((a, o) => a + logCount(o, /\b(WARN|ERROR)\b/), 0);
  }
}

function line(r: Row): string[] {
  const w = (x: Window) =>
    `CPU ${x.cpuPct.toFixed(1)} %, RSS ${x.rssMiB.map((m) => m.toFixed(0)).join('+')} MiB, lag p99 ${x.lagP99Ms.toFixed(0)} ms (idle control process ${x.controlLagP99Ms.toFixed(0)} ms), Redis ${x.redisOps.toFixed(0)} ops/s`;
  const j = r.jobs;
  return [
    `${r.fleet} nodes, ${r.orchestrators} orchestrator(s): watched ${r.bootS.toFixed(1)} s after start`,
    `  boot:           CPU ${r.boot.cpuPct.toFixed(1)} %, lag p99 ${r.boot.lagP99Ms.toFixed(0)} ms; log lines over the run: ${r.logs.handshakeTimeouts} handshake time-outs, ${r.logs.redisTimeouts} Redis command time-outs, ${r.logs.warnings} warnings/errors`,
    `  idle ${IDLE_S} s:      ${w(r.idle)}`,
    ...(r.perK.length ? [`  under notices:  ${w(r.load)}`] : []),
    ...r.perK.flatMap((p) => [
      `  notices on ${String(p.k).padStart(3)} node(s) at once: ${p.ms.length} samples, notice -> first command p50 ${pct(p.ms, 50).toFixed(0)} ms, p99 ${pct(p.ms, 99).toFixed(0)} ms, max ${Math.max(...p.ms).toFixed(0)} ms${p.missed ? `, ${p.missed} not reached in 15 s` : ''}`,
      `      p50 / p99 by stage: ${(['seen', 'raised', 'planned', 'recorded', 'started'] as const).map((k) => `${k} ${pct(p.stages[k], 50).toFixed(0)} / ${pct(p.stages[k], 99).toFixed(0)}`).join(', ')} ms`,
    ]),
    ...(j
      ? [
          `  ${j.posted} migrations posted at once: POST p50 ${pct(j.postMs, 50).toFixed(0)} / p99 ${pct(j.postMs, 99).toFixed(0)} ms, ${j.refused.length} refused${j.refused.length ? ` (${[...new Set(j.refused)].slice(0, 3).join('; ')})` : ''}`,
          `    enqueue -> first command at the source: ${j.firstMs.length} seen, p50 ${pct(j.firstMs, 50).toFixed(0)} ms, p99 ${pct(j.firstMs, 99).toFixed(0)} ms${j.missed ? `, ${j.missed} not in 60 s` : ''}`,
          `    during them:  ${w(j.window)}`,
        ]
      : []),
  ];
}

async function main(): Promise<void> {
  await startRedis(REDIS_PORT);
  const redis = new Redis(REDIS_PORT, '127.0.0.1');
  const sim = await Sim.start(Math.max(NODES, BASELINE), SIM_PROCS, SSH_PORT);
  control = await LagProbe.start();
  const rows: Row[] = [];
  try {
    for (const fleet of [BASELINE, NODES].filter((f) => f > 0))
      for (const count of COUNTS) {
        const row = await run(sim, fleet, count, redis);
        rows.push(row);
        line(row).forEach((l) => console.log(l));
      }
  } finally {
    sim.stop();
    control.stop();
    redis.disconnect();
    await stopRedis(REDIS_PORT);
  }
  console.log('\nsummary (ratios: the large fleet over the baseline, same orchestrator count)');
  for (const r of rows) line(r).forEach((l) => console.log(l));
  for (const count of COUNTS) {
    const [b, l] = [
      rows.find((r) => r.fleet === BASELINE && r.orchestrators === count)!,
      rows.find((r) => r.fleet === NODES && r.orchestrators === count)!,
    ];
    if (!b || !l) continue;
    const p99 = (r: Row, k: number) => pct(r.perK.find((p) => p.k === k)?.ms ?? [], 99);
    console.log(
      `  ${count} orchestrator(s), ${NODES} / ${BASELINE} nodes: idle CPU x${(l.idle.cpuPct / b.idle.cpuPct).toFixed(1)}, RSS x${(l.idle.rssMiB.reduce((a, x) => a + x) / b.idle.rssMiB.reduce((a, x) => a + x)).toFixed(2)}, ` +
        `Redis ops x${(l.idle.redisOps / b.idle.redisOps).toFixed(1)}, p99 (k=1) ${p99(b, 1).toFixed(0)} -> ${p99(l, 1).toFixed(0)} ms`,
    );
  }
  const worst = Math.max(...rows.filter((r) => r.fleet === NODES).flatMap((r) => r.perK.map((p) => pct(p.ms, 99))));
  const missed = rows.filter((r) => r.fleet === NODES).some((r) => r.perK.some((p) => p.missed > 0));
  console.log(
    `\ntarget notice-to-first-freeze p99 <= 1000 ms at ${NODES} nodes: notice -> first command worst p99 ${worst.toFixed(0)} ms` +
      `${missed ? ' (some notices not reached)' : ''}; the node-side part (preflight, prepare, dump start) comes on top`,
  );
  if (unavailable) console.log(`registrations answered 503 (Redis unavailable) and retried: ${unavailable}`);
  console.log(
    JSON.stringify(rows.map((r) => (r.jobs ? { ...r, jobs: { ...r.jobs, refused: r.jobs.refused.length } } : r))),
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
