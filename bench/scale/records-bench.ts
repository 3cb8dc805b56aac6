/**
 * Records at scale: the built orchestrator (API role, one process) over a Redis holding N migration records,
 * N = 0, 10,000 and 100,000 (written straight into Redis through RedisRecords, as the orchestrator writes
 * them: record, version counter, creation index, term sets).
 *
 *   bash bench/run.sh scale --records [--sizes 0,10000,100000] [--reps 300]
 *
 * Per N: `GET /migrations?limit=100` (first page; a page deep in the list by cursor; filtered by state and by
 * node) p50/p99 over sequential calls; `POST /migrations` for a workload another migration holds (the whole
 * request up to its 409: workload, node, claim, holder lookups; what the create path reads from Redis, minus
 * the SSH inspection of the workload and the queue add); a new record's save (index and term sets included);
 * the process's RSS after 10 concurrent list calls x 30 rounds. Ratios against N = 0 / 10,000 in the same run.
 * Not simulated here: nodes, SSH, watchers (see the README's "not measured").
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { processKey } from '@spotlift/domain';
import { RedisRecords, RedisWorkloadClaims, migrationOwner } from '@spotlift/store';
import { OrchestratorProcess, builtOrchestratorMain, labDir, startRedis, stopRedis } from '@spotlift/testing';

const REDIS_PORT = 6478;
const args = process.argv.slice(2);
const opt = (name: string, fallback: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 && args[i + 1] ? args[i + 1]! : fallback;
};
const SIZES = opt('sizes', '0,10000,100000').split(',').map(Number);
const REPS = Number(opt('reps', '300'));
const STATES = ['queued', 'running', 'completed', 'rolled_back', 'failed', 'cancelled'] as const;
const T0 = Date.now() - 3 * 86_400_000; // inside the default 7-day retention: nothing is trimmed meanwhile

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;
const ms = (n: number) => `${n.toFixed(1)} ms`;

async function timed(reps: number, call: () => Promise<unknown>): Promise<{ p50: number; p99: number }> {
  const xs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t = performance.now();
    await call();
    xs.push(performance.now() - t);
  }
  return { p50: pct(xs, 0.5), p99: pct(xs, 0.99) };
}

function rssMiB(pid: number): number {
  const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) / 1024;
}

/** N migrations over 50 nodes and 2,000 workloads, creation times spread over two days, states in turn. */
async function seed(redis: Redis, prefix: string, n: number): Promise<void> {
  const repo = new RedisRecords<MigrationRecord>(redis, prefix, 'migration', { versioned: true });
  const inFlight = new Set<Promise<void>>();
  for (let i = 0; i < n; i++) {
    const at = new Date(T0 + Math.floor((i * 2 * 86_400_000) / Math.max(n, 1))).toISOString();
    const m: MigrationRecord = {
      id: `mig-${i.toString(36).padStart(8, '0')}`,
      workloadId: `wl-${i % 2000}`,
      sourceNodeId: `node-${i % 50}`,
      destinationNodeId: `node-${(i + 1) % 50}`,
      destinationReason: 'requested',
      strategy: 'stop-and-copy',
      transport: 'tls',
      state: STATES[i % STATES.length]!,
      phases: [
        { name: 'preflight', startedAt: at, endedAt: at },
        { name: 'dump', startedAt: at, endedAt: at },
      ],
      criu: {},
      bytes: { pages: 64 << 20, images: 70 << 20 },
      keepImages: false,
      createdAt: at,
      updatedAt: at,
    };
    const p: Promise<void> = repo.save(m).then(() => void inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= 256) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  // The term sets are written by every save: the start-up rebuild is not needed (and would skew the figures).
  await redis.set(`${prefix}:index-version`, '1');
}

/** A node, a running workload on it, and an unfinished migration holding its claim: POST answers 409. */
async function seedBusyWorkload(redis: Redis, prefix: string): Promise<void> {
  const now = new Date().toISOString();
  const node = {
    id: 'node-x',
    host: '127.0.0.2',
    port: 22,
    user: 'root',
    hostKey: 'SHA256:' + 'A'.repeat(43),
    state: 'ready',
    lifecycle: 'spot',
    labels: {},
    createdAt: now,
    updatedAt: now,
  } as unknown as NodeRecord;
  const workload = {
    id: 'wl-busy',
    name: 'busy',
    nodeId: 'node-x',
    pid: 4242,
    state: 'running',
    createdAt: now,
    updatedAt: now,
  } as WorkloadRecord;
  const holder = {
    id: 'mig-holder',
    workloadId: 'wl-busy',
    sourceNodeId: 'node-x',
    destinationNodeId: 'node-0',
    destinationReason: 'requested',
    strategy: 'stop-and-copy',
    transport: 'tls',
    state: 'running',
    phases: [],
    criu: {},
    bytes: { pages: 0, images: 0 },
    createdAt: now,
    updatedAt: now,
  } as unknown as MigrationRecord;
  await new RedisRecords<NodeRecord>(redis, prefix, 'node', { versioned: true }).save(node);
  await new RedisRecords<WorkloadRecord>(redis, prefix, 'workload', { versioned: true }).save(workload);
  await new RedisRecords<MigrationRecord>(redis, prefix, 'migration', { versioned: true }).save(holder);
  const claim = await new RedisWorkloadClaims(redis, prefix).claim(
    processKey(workload),
    migrationOwner('mig-holder'),
    3_600_000,
  );
  if (!claim.ok) throw new Error('could not seed the claim');
}

interface Row {
  n: number;
  seedS: number;
  first: { p50: number; p99: number };
  deep: { p50: number; p99: number };
  byState: { p50: number; p99: number };
  byNode: { p50: number; p99: number };
  post: { p50: number; p99: number };
  save: { p50: number; p99: number };
  rss: number;
  bodyKiB: number;
}

async function measure(redis: Redis, n: number, config: string): Promise<Row> {
  const prefix = `bench-records-${n}-${randomBytes(3).toString('hex')}`;
  const t = performance.now();
  await seed(redis, prefix, n);
  await seedBusyWorkload(redis, prefix);
  const seedS = (performance.now() - t) / 1000;
  const orch = new OrchestratorProcess(
    builtOrchestratorMain(),
    REDIS_PORT,
    { SPOTLIFT_ROLE: 'api', SPOTLIFT_CONFIG: config, SPOTLIFT_LOG_FORMAT: 'json' },
    prefix,
    { logDir: join(labDir(), 'bench') },
  );
  await orch.start();
  try {
    const base = orch.baseUrl;
    const headers = { authorization: `Bearer ${orch.token}`, 'content-type': 'application/json' };
    const get = async (path: string) => {
      const res = await fetch(base + path, { headers });
      const body = await res.text();
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${body.slice(0, 200)}`);
      return { body, next: res.headers.get('x-next-cursor') };
    };
    for (let i = 0; i < 30; i++) await get('/migrations?limit=100'); // warm-up (JIT, connections)
    const bodyKiB = Buffer.byteLength((await get('/migrations?limit=100')).body) / 1024;
    const first = await timed(REPS, () => get('/migrations?limit=100'));
    // A cursor 40 pages deep (4,000 records in), or as deep as the list goes.
    let cursor: string | null = null;
    for (let i = 0; i < 40; i++) {
      const page: { next: string | null } = await get(`/migrations?limit=100${cursor ? `&cursor=${cursor}` : ''}`);
      if (!page.next) break;
      cursor = page.next;
    }
    const deep = await timed(REPS, () => get(`/migrations?limit=100${cursor ? `&cursor=${cursor}` : ''}`));
    const byState = await timed(REPS, () => get('/migrations?limit=100&state=failed'));
    const byNode = await timed(REPS, () => get('/migrations?limit=100&node=node-7&state=completed'));
    const post = await timed(Math.min(REPS, 200), async () => {
      const res = await fetch(`${base}/migrations`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ workload: 'wl-busy' }),
      });
      await res.text();
      if (res.status !== 409) throw new Error(`POST /migrations: expected 409, got ${res.status}`);
    });
    const repo = new RedisRecords<MigrationRecord>(redis, prefix, 'migration', { versioned: true });
    let k = 0;
    const save = await timed(200, () => {
      const now = new Date().toISOString();
      return repo.save({
        id: `mig-new-${k++}`,
        workloadId: 'wl-new',
        sourceNodeId: 'node-1',
        destinationNodeId: 'node-2',
        destinationReason: 'requested',
        strategy: 'stop-and-copy',
        transport: 'tls',
        state: 'queued',
        phases: [],
        criu: {},
        bytes: { pages: 0, images: 0 },
        createdAt: now,
        updatedAt: now,
      } as unknown as MigrationRecord);
    });
    for (let round = 0; round < 30; round++) {
      await Promise.all(Array.from({ length: 10 }, () => get('/migrations?limit=1000')));
    }
    const rss = rssMiB(orch.pid!);
    return { n, seedS, first, deep, byState, byNode, post, save, rss, bodyKiB };
  } finally {
    await orch.kill('SIGTERM');
    // The records go with the prefix; the next size starts from an empty Redis.
    await redis.flushdb();
  }
}

async function main(): Promise<void> {
  if (!args.includes('--records')) {
    console.error('bench/run.sh scale: --records or --watch');
    process.exit(2);
  }
  await startRedis(REDIS_PORT);
  const redis = new Redis({ host: '127.0.0.1', port: REDIS_PORT });
  const lab = JSON.parse(readFileSync(join(labDir(), 'nodes.json'), 'utf8')) as { ssh: unknown };
  const config = join(labDir(), 'bench', 'records-config.json');
  writeFileSync(config, JSON.stringify({ ssh: lab.ssh, nodes: [] }));
  const rows: Row[] = [];
  try {
    await redis.flushdb();
    for (const n of SIZES) {
      const row = await measure(redis, n, config);
      rows.push(row);
      console.log(
        `N=${n}: seeded in ${row.seedS.toFixed(1)} s; GET first page ${ms(row.first.p50)} p50 / ${ms(row.first.p99)} p99 ` +
          `(${row.bodyKiB.toFixed(0)} KiB); deep cursor p99 ${ms(row.deep.p99)}; state= p99 ${ms(row.byState.p99)}; ` +
          `node=&state= p99 ${ms(row.byNode.p99)}; POST (409 path) ${ms(row.post.p50)} / ${ms(row.post.p99)}; ` +
          `save ${ms(row.save.p50)} / ${ms(row.save.p99)}; RSS ${row.rss.toFixed(0)} MiB`,
      );
    }
  } finally {
    redis.disconnect();
    await stopRedis(REDIS_PORT);
  }
  const at = (n: number) => rows.find((r) => r.n === n);
  const big = at(100_000);
  const small = at(10_000);
  const none = at(0);
  console.log('\nsummary');
  if (big) console.log(`  GET /migrations?limit=100 p99 at 100,000 records: ${ms(big.first.p99)} (target < 50 ms)`);
  if (big && none) {
    console.log(
      `  POST /migrations p50 100k vs 0 records: ${ms(big.post.p50)} vs ${ms(none.post.p50)} (x${(big.post.p50 / none.post.p50).toFixed(2)})`,
    );
    console.log(
      `  record save p50 100k vs 0: ${ms(big.save.p50)} vs ${ms(none.save.p50)} (x${(big.save.p50 / none.save.p50).toFixed(2)})`,
    );
  }
  if (big && small)
    console.log(
      `  RSS 100k vs 10k records: ${big.rss.toFixed(0)} vs ${small.rss.toFixed(0)} MiB (x${(big.rss / small.rss).toFixed(2)}, target < 1.5)`,
    );
}

void main().catch((error: Error) => {
  console.error(error);
  process.exit(1);
});
