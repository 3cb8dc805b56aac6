/**
 * The worker's one place of error classification: what becomes a BullMQ retry and what is unrecoverable.
 */
import { Logger } from '@nestjs/common';
import { UnrecoverableError, type Job } from 'bullmq';
import { NodeUnreachableError, NotFoundError, type MigrationRecord } from '@spotlift/domain';
import { MigrationInterrupted, type MigrationEngine, type RunControl } from '@spotlift/engine';
import { EventEmitter } from 'node:events';
import { InMemoryMigrationFlags, InMemoryWorkloadClaims, OutageTolerantFlags } from '@spotlift/store';
import { aMigration } from '@spotlift/testing';
import type { AppConfig } from '../config/app-config.js';
import type { RedisLink } from '../core/redis-link.js';
import type { MigrationMetrics } from '../metrics/migration-metrics.js';
import { MigrationsProcessor } from './migrations.processor.js';

function setup(run: (id: string, control: RunControl) => Promise<MigrationRecord>, redisWasDown = false) {
  const gaveUp: string[] = [];
  const engine = {
    run,
    giveUp: (id: string, why: string) => {
      gaveUp.push(why);
      return Promise.resolve(aMigration({ id, state: 'failed', error: why }));
    },
  } as unknown as MigrationEngine;
  const metrics = { record: () => undefined } as unknown as MigrationMetrics;
  const claims = new InMemoryWorkloadClaims();
  const processor = new MigrationsProcessor(
    engine,
    { workerConcurrency: 1 } as AppConfig,
    metrics,
    new OutageTolerantFlags(new InMemoryMigrationFlags()),
    claims,
    { wasDownSince: () => redisWasDown } as unknown as RedisLink,
  );
  // The BullMQ worker, as far as the processor uses it: its concurrency and its events.
  const worker = Object.assign(new EventEmitter(), { concurrency: 0 });
  (processor as unknown as { _worker: EventEmitter })._worker = worker;
  processor.onModuleInit();
  const job = (attemptsMade = 0, data: unknown = { migrationId: 'mig-1' }) =>
    ({ id: 'migrate-mig-1', data, attemptsMade, opts: { attempts: 7 } }) as unknown as Job<unknown>;
  return { processor, job, gaveUp, claims, worker };
}

beforeAll(() => {
  Logger.overrideLogger(false);
});

describe('MigrationsProcessor error classification', () => {
  it('completes a completed or cancelled migration', async () => {
    const { processor, job } = setup(() => Promise.resolve(aMigration({ state: 'cancelled' })));
    await expect(processor.process(job())).resolves.toEqual({ state: 'cancelled' });
  });

  it.each(['failed', 'rolled_back'] as const)(
    'fails a %s migration as unrecoverable (it already rolled back; no retry)',
    async (state) => {
      const { processor, job } = setup(() =>
        Promise.resolve(aMigration({ state, error: 'criu restore failed on node-b (address_in_use)' })),
      );
      const error = await processor.process(job()).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toBe(`${state}: criu restore failed on node-b (address_in_use)`);
    },
  );

  it('retries an interrupted migration (transient) while attempts remain, and the engine gives up on the last', async () => {
    const interrupted = new MigrationInterrupted("node 'node-b' cannot be reached over SSH", true, true);
    const { processor, job, gaveUp } = setup(() => Promise.reject(interrupted));
    expect(await processor.process(job(0)).catch((e: unknown) => e)).toBe(interrupted);
    expect(gaveUp).toEqual([]);
    const last = await processor.process(job(6)).catch((e: unknown) => e);
    expect(last).toBeInstanceOf(UnrecoverableError);
    expect(gaveUp).toEqual(["gave up after 7 attempts: node 'node-b' cannot be reached over SSH"]);
  });

  it('retries a transient SSH error and a Redis hiccup; never a missing migration or bad job data', async () => {
    const unreachable = new NodeUnreachableError('node-a', 'ECONNREFUSED');
    const u = setup(() => Promise.reject(unreachable));
    expect(await u.processor.process(u.job()).catch((e: unknown) => e)).toBe(unreachable);
    const redis = new Error('Connection is closed.');
    const r = setup(() => Promise.reject(redis));
    expect(await r.processor.process(r.job()).catch((e: unknown) => e)).toBe(redis);

    const missing = setup(() => Promise.reject(new NotFoundError('migration', 'mig-1')));
    const e1 = await missing.processor.process(missing.job()).catch((e: unknown) => e);
    expect(e1).toBeInstanceOf(UnrecoverableError);
    expect(missing.gaveUp).toEqual([]);
    const bad = setup(() => Promise.reject(new Error('not called')));
    const e2 = await bad.processor.process(bad.job(0, { migrationId: 'a:b' })).catch((e: unknown) => e);
    expect(e2).toBeInstanceOf(UnrecoverableError);
    expect((e2 as Error).message).toMatch(/^malformed job data/);
  });

  it('hands the engine a control bound to the migration: cancel flag and commit claim', async () => {
    let control: RunControl | undefined;
    const { processor, job } = setup((_id, c) => {
      control = c;
      return Promise.resolve(aMigration({ state: 'completed' }));
    });
    await processor.process(job());
    expect(await control!.cancelRequested()).toBe(false);
    expect(await control!.claimCommit()).toBe(true);
    expect(control!.lost?.()).toBe(false);
  });

  it('re-asserts the workload claim as this job, and releases it at an end state only', async () => {
    const held: (string | undefined)[] = [];
    const interrupted = new MigrationInterrupted('node-b unreachable', true, true);
    let fail = true;
    const { processor, job, claims } = setup(async (_id, c) => {
      held.push(await c.claimWorkload!('proc:k'));
      if (fail) throw interrupted;
      return aMigration({ id: 'mig-1', state: 'completed', claimKey: 'proc:k' });
    });
    await claims.claim('proc:other', 'migration:mig-2');
    expect(await processor.process(job()).catch((e: unknown) => e)).toBe(interrupted);
    // a retried job keeps its claim
    expect((await claims.holder('proc:k'))?.owner).toBe('migration:mig-1');
    fail = false;
    await processor.process(job(1));
    expect(held).toEqual([undefined, undefined]);
    expect(await claims.holder('proc:k')).toBeUndefined();
    // another job's claim is reported as its holder, and never released by this one
    const other = setup((_id, c) => c.claimWorkload!('proc:other').then(() => aMigration({ state: 'failed' })));
    await other.claims.claim('proc:other', 'migration:mig-2');
    await other.processor.process(other.job()).catch(() => undefined);
    expect((await other.claims.holder('proc:other'))?.owner).toBe('migration:mig-2');
  });

  it('Redis away when the job re-asserts the claim: the creation claim stands and the job goes on; other errors stop it', async () => {
    const held: (string | undefined)[] = [];
    const { processor, job, claims } = setup(async (_id, c) => {
      held.push(await c.claimWorkload!('proc:k'));
      return aMigration({ id: 'mig-1', state: 'completed', claimKey: 'proc:k' });
    });
    claims.claim = () => Promise.reject(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
    await expect(processor.process(job())).resolves.toEqual({ state: 'completed' });
    expect(held).toEqual([undefined]);

    const broken = new Error('WRONGTYPE Operation against a key holding the wrong kind of value');
    const other = setup((_id, c) => c.claimWorkload!('proc:k').then(() => aMigration({ state: 'completed' })));
    other.claims.claim = () => Promise.reject(broken);
    await expect(other.processor.process(other.job())).rejects.toThrow(/WRONGTYPE/);
  });

  it('a lock lost to a Redis outage is not "another worker has it": the engine drives on', async () => {
    for (const redisWasDown of [true, false]) {
      let release!: () => void;
      let control: RunControl | undefined;
      const { processor, job, worker } = setup((_id, c) => {
        control = c;
        return new Promise((resolve) => (release = () => resolve(aMigration({ state: 'completed' }))));
      }, redisWasDown);
      const done = processor.process(job());
      await new Promise((r) => setImmediate(r));
      worker.emit('lockRenewalFailed', ['migrate-mig-1']);
      expect(control!.lost?.()).toBe(!redisWasDown);
      release();
      await done;
    }
  });

  it('a second job for a migration this worker already drives joins the first run: one attempt, one outcome', async () => {
    let runs = 0;
    let release!: () => void;
    const { processor, job } = setup(() => {
      runs++;
      return new Promise((resolve) => (release = () => resolve(aMigration({ state: 'completed' }))));
    });
    const first = processor.process(job());
    const second = processor.process(job(1));
    await new Promise((r) => setImmediate(r));
    release();
    expect(await Promise.all([first, second])).toEqual([{ state: 'completed' }, { state: 'completed' }]);
    expect(runs).toBe(1);
    // Once it ended, a new job runs the engine again (which answers from the finished record).
    const third = processor.process(job());
    await new Promise((r) => setImmediate(r));
    release();
    await third;
    expect(runs).toBe(2);
  });
});
