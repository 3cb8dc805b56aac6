/**
 * The notice and migration paths' indexed reads (record-queries.ts) on a private redis-server: each answers
 * what a whole-kind `list()` filtered by hand would, from the term sets (they take only `page`: no `list()`).
 */
import type { EvacuationRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { processKey } from '@spotlift/domain';
import { aMigration, aWorkload, startRedis, stopRedis } from '@spotlift/testing';
import { Redis } from 'ioredis';
import {
  evacuationsOfNode,
  migrationsInFlight,
  newestCompletedMigrations,
  workloadsOfProcess,
  workloadsOnNode,
} from './record-queries.js';
import { RedisRecords } from './redis-repository.js';

const PORT = 6491;
const T0 = Date.parse('2026-12-01T00:00:00Z');
const at = (s: number) => new Date(T0 + s * 1000).toISOString();
const ids = (xs: { id: string }[]) => xs.map((x) => x.id).sort();

describe('indexed reads of the notice and migration paths (Redis)', () => {
  let redis: Redis;
  let n = 0;
  let prefix: string;

  beforeAll(async () => {
    await startRedis(PORT);
    redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
  }, 60_000);

  beforeEach(() => {
    prefix = `rq${++n}`;
  });

  afterAll(async () => {
    await redis?.quit();
    await stopRedis(PORT);
  }, 60_000);

  it('workloads on a node, of a state, and of one process: from the term sets', async () => {
    const repo = new RedisRecords<WorkloadRecord>(redis, prefix, 'workload', { versioned: true });
    const identity = { bootId: 'b', pidNs: 'ns', startTime: '7' };
    const rows: WorkloadRecord[] = [
      aWorkload({ id: 'a1', nodeId: 'a', pid: 10, state: 'running', identity, createdAt: at(1) }),
      aWorkload({ id: 'a2', nodeId: 'a', pid: 11, state: 'migrating', createdAt: at(2) }),
      aWorkload({ id: 'a3', nodeId: 'a', pid: 10, state: 'gone', identity, createdAt: at(3) }),
      aWorkload({ id: 'b1', nodeId: 'b', pid: 10, state: 'running', identity, createdAt: at(4) }),
    ];
    for (let i = 0; i < 200; i++)
      rows.push(aWorkload({ id: `c${i}`, nodeId: `c${i}`, pid: 1, state: 'running', createdAt: at(10 + i) }));
    for (const w of rows) await repo.save(w);

    expect(ids(await workloadsOnNode(repo, 'a'))).toEqual(['a1', 'a2', 'a3']);
    expect(ids(await workloadsOnNode(repo, 'a', 'running'))).toEqual(['a1']);
    // One process, two records on two nodes sharing a kernel (the lab's namespaces): both found; a gone one holds
    // nothing.
    expect(ids(await workloadsOfProcess(repo, processKey(rows[0]!)))).toEqual(['a1', 'b1']);
    // A state change moves the record out of the process's term in the same step as the write.
    const a1 = (await repo.get('a1'))!;
    a1.state = 'checkpointed';
    await repo.save(a1);
    expect(ids(await workloadsOfProcess(repo, processKey(rows[0]!)))).toEqual(['b1']);
  });

  it('migrations in flight (all, and of one node as source or destination) and the newest completed', async () => {
    const repo = new RedisRecords<MigrationRecord>(redis, prefix, 'migration', { versioned: true });
    const rows: MigrationRecord[] = [
      aMigration({ id: 'q', state: 'queued', sourceNodeId: 'a', destinationNodeId: 'b', createdAt: at(1) }),
      aMigration({ id: 'r', state: 'running', sourceNodeId: 'c', destinationNodeId: 'a', createdAt: at(2) }),
      aMigration({ id: 'r2', state: 'running', sourceNodeId: 'c', destinationNodeId: 'd', createdAt: at(3) }),
      aMigration({ id: 'f', state: 'failed', sourceNodeId: 'a', destinationNodeId: 'b', createdAt: at(4) }),
    ];
    for (let i = 0; i < 30; i++)
      rows.push(
        aMigration({
          id: `done${i}`,
          state: 'completed',
          sourceNodeId: 'a',
          destinationNodeId: 'b',
          createdAt: at(10 + i),
        }),
      );
    for (const m of rows) await repo.save(m);

    expect(ids(await migrationsInFlight(repo))).toEqual(['q', 'r', 'r2']);
    expect(ids(await migrationsInFlight(repo, 'a'))).toEqual(['q', 'r']);
    expect(ids(await migrationsInFlight(repo, 'd'))).toEqual(['r2']);
    const newest = await newestCompletedMigrations(repo, 5);
    expect(newest.map((m) => m.id)).toEqual(['done29', 'done28', 'done27', 'done26', 'done25']);
  });

  it("a node's evacuations, open and finished, and no other node's", async () => {
    const repo = new RedisRecords<EvacuationRecord>(redis, prefix, 'evacuation', { versioned: true });
    const ev = (id: string, nodeId: string, state: EvacuationRecord['state']): EvacuationRecord =>
      ({ id, nodeId, state, createdAt: at(1), events: [], jobs: [] }) as unknown as EvacuationRecord;
    for (const e of [ev('e1', 'a', 'running'), ev('e2', 'a', 'completed'), ev('e3', 'b', 'running')])
      await repo.save(e);
    expect(ids(await evacuationsOfNode(repo, 'a'))).toEqual(['e1', 'e2']);
    expect(await evacuationsOfNode(repo, 'zzz')).toEqual([]);
  });
});
