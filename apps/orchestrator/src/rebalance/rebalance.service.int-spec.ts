/**
 * The rebalance service on a real Redis (port 6480): what migrations stored there (PairLinks' per-pair page
 * throughput and the node's outbound figure, as StrategyChain records them; post-copy trials as the engine puts
 * them) is what its plans are made of, and its plans, claims and move history live there too. Records of nodes
 * and workloads are in memory: the figures' way through Redis is what this shows.
 */
import { SchedulerRegistry } from '@nestjs/schedule';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { Clock, type NodeOps } from '@spotlift/engine';
import {
  InMemoryEvacuationRecords,
  InMemoryRecords,
  RedisPairLinks,
  RedisPostCopyTrials,
  type PairLinkSample,
} from '@spotlift/store';
import { aMigration, aNode, aWorkload, startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { MigrationMetrics } from '../metrics/migration-metrics.js';
import type { MigrationRequest, MigrationsService } from '../migrations/migrations.service.js';
import { RebalanceSettings } from './rebalance-config.js';
import { RebalanceMetrics } from './rebalance-metrics.js';
import { RedisRebalanceStore } from './rebalance-store.js';
import { RebalanceService } from './rebalance.service.js';
import { ReleasableMarks } from './releasable-marks.js';

const PORT = 6480;
const GIB = 2 ** 30;
const MIB = 2 ** 20;
const T0 = new Date('2026-03-04T12:00:00Z');

class FixedClock extends Clock {
  now(): Date {
    return T0;
  }
}

describe('RebalanceService on a real Redis: the per-pair figures migrations stored', () => {
  let redis: Redis;

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  /** node-a and node-b carry unmovable work; node-c's workloads are the ones a consolidation moves. */
  function world(prefix: string, cWorkloads: Array<Partial<WorkloadRecord> & { id: string }>) {
    const nodes = new InMemoryRecords<NodeRecord>();
    const workloads = new InMemoryRecords<WorkloadRecord>();
    const migrations = new InMemoryRecords<MigrationRecord>();
    for (const id of ['node-a', 'node-b', 'node-c'])
      void nodes.save(
        aNode(id, {
          spotPool: `pool-${id}`,
          probe: {
            probedAt: T0.toISOString(),
            criuOk: true,
            features: {},
            memTotalBytes: 16 * GIB,
            memAvailableBytes: 12 * GIB,
          },
        }),
      );
    for (const [id, n] of [
      ['a1', 'node-a'],
      ['b1', 'node-b'],
    ] as const)
      void workloads.save(aWorkload({ id, name: id, nodeId: n, rssBytes: GIB / 4, movable: false }));
    for (const w of cWorkloads)
      void workloads.save(aWorkload({ name: w.id, nodeId: 'node-c', rssBytes: GIB / 16, ...w }));
    const started: MigrationRequest[] = [];
    const service = new RebalanceService(
      new RedisRebalanceStore(redis, prefix),
      nodes,
      workloads,
      new InMemoryEvacuationRecords(),
      migrations,
      {
        start: async (req: MigrationRequest) => {
          started.push(req);
          const m = aMigration({ id: `mig-${started.length}`, workloadId: req.workloadId });
          await migrations.save(m);
          return m;
        },
      } as unknown as MigrationsService,
      {
        memAvailableBytes: () => Promise.resolve(undefined),
        cpuSample: () => Promise.resolve(undefined),
      } as unknown as NodeOps,
      {
        runsWorker: true,
        rebalance: RebalanceSettings.parse({
          mode: 'plan',
          policies: ['consolidate'],
          budgets: { maxConcurrentMoves: 2 },
        }),
        evacuation: EvacuationSettings.parse({}),
      } as AppConfig,
      new FixedClock(),
      new RebalanceMetrics(new MigrationMetrics()),
      new SchedulerRegistry(),
      new ReleasableMarks(nodes, new FixedClock()),
      new RedisPairLinks(redis, prefix),
      new RedisPostCopyTrials(redis, prefix),
    );
    service.driveInBackground = false;
    return { service, started };
  }

  /** What StrategyChain.recordLink writes when a migration from node-c over tls completes. */
  const completed = (prefix: string, to: string, mibps: number, fromS: number, toS: number) =>
    new RedisPairLinks(redis, prefix).record({
      sourceNodeId: 'node-c',
      destinationNodeId: to,
      transport: 'tls',
      bytesPerSec: mibps * MIB,
      at: new Date(T0.getTime() + toS * 1000).toISOString(),
      startedAt: new Date(T0.getTime() + fromS * 1000).toISOString(),
    } satisfies PairLinkSample);

  it('a slow pair stored by a migration steers the move; its time is predicted on the pair', async () => {
    const prefix = `rb-int-${Date.now()}-pair`;
    const plain = await world(prefix, [{ id: 'c1' }]).service.evaluate('request');
    expect(plain.moves.map((m) => `${m.workloadId}>${m.toNodeId}`)).toEqual(['c1>node-a']);
    await completed(prefix, 'node-a', 4, -60, -44);
    await completed(prefix, 'node-b', 100, -30, -29.4);
    // Stored in Redis with its week-long expiry, as the engine left it.
    expect(await redis.pttl(`${prefix}:link:node-c->node-a:tls`)).toBeGreaterThan(6 * 86_400_000);
    const steered = await world(prefix, [{ id: 'c1' }]).service.evaluate('request');
    expect(steered.moves.map((m) => `${m.workloadId}>${m.toNodeId}`)).toEqual(['c1>node-b']);
    // 64 MiB at the stored 100 MiB/s, slower than the fleet figure: the plan kept in Redis says the same.
    const kept = (await new RedisRebalanceStore(redis, prefix).get(steered.id))!;
    expect(kept.moves[0]!.predictedTotalSeconds).toBe(steered.moves[0]!.predictedTotalSeconds);
    expect(kept.moves[0]!.predictedTotalSeconds).toBeGreaterThan(plain.moves[0]!.predictedTotalSeconds);
  });

  it("a pair's post-copy trial and node-c's outbound figure, both from Redis, shape the plan and its apply", async () => {
    const prefix = `rb-int-${Date.now()}-trial`;
    // 1 GiB dirtied at 2 GiB/s: only post-copy keeps it short, and only where the trial passed.
    const hot = { id: 'c1', rssBytes: GIB, dirtyRateBytesPerSec: 2 * GIB };
    const before = await world(prefix, [hot, { id: 'c2' }]).service.evaluate('request');
    expect(before.moves.find((m) => m.workloadId === 'c1')!.strategy).not.toBe('post-copy');
    expect(before.maxMovesFrom).toBeUndefined();
    const trials = new RedisPostCopyTrials(redis, prefix);
    for (const to of ['node-a', 'node-b'])
      await trials.put(
        { sourceNodeId: 'node-c', destinationNodeId: to, ok: true, at: T0.toISOString(), durationMs: 900 },
        3_600_000,
      );
    // Alone a move from node-c got 100 MiB/s; two at once 50 each: its link carries one move's worth.
    await completed(prefix, 'node-a', 100, -600, -590);
    await completed(prefix, 'node-a', 50, -20, 0);
    await completed(prefix, 'node-b', 50, -20, 0);
    expect(JSON.parse((await redis.get(`${prefix}:outbound:node-c:tls`))!)).toMatchObject({
      bytesPerSec: 100 * MIB,
      concurrent: 2,
    });
    const w = world(prefix, [hot, { id: 'c2' }]);
    const plan = await w.service.evaluate('request');
    expect(plan.moves.find((m) => m.workloadId === 'c1')!.strategy).toBe('post-copy');
    expect(plan.maxMovesFrom).toEqual({ 'node-c': 1 });
    await w.service.apply(plan.id, 'alice');
    await w.service.step(plan.id);
    // The budget allows two at once; node-c's measured link, one.
    expect(w.started).toHaveLength(1);
  });
});
