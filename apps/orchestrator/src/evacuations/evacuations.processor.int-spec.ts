/**
 * A stopping replica hands its running evacuations back, on a real BullMQ queue on a private redis-server: the
 * evacuation worker A runs goes back to the queue when A's processor is destroyed (Nest's shutdown order: before
 * the worker closes), A's close ends at once instead of waiting for the evacuation (up to its deadline plus five
 * minutes), and worker B, another replica, takes the same job and finishes it; the job never counts as failed.
 * The coordinator is a fake that runs until its signal aborts (what the real one does while its moves run).
 */
import { startRedis, stopRedis, until } from '@spotlift/testing';
import {
  EVACUATE_JOB,
  EVACUATE_JOB_OPTIONS,
  EVACUATION_WORKER_OPTIONS,
  EVACUATIONS_QUEUE,
  evacuateJobId,
} from '@spotlift/queue';
import type { EvacuationRecord } from '@spotlift/domain';
import { Queue, Worker, type Job } from 'bullmq';
import type { EvacuationCoordinator } from './evacuation-coordinator.js';
import { EvacuationsProcessor } from './evacuations.processor.js';

const PORT = 6493;
const connection = { host: '127.0.0.1', port: PORT, maxRetriesPerRequest: null };
const prefix = 'evac-handback';

/** Runs an evacuation until its signal aborts (`finishes`: to its end at once), recording who ran what. */
function fakeCoordinator(finishes: boolean) {
  const runs: string[] = [];
  const coordinator = {
    async run(id: string, signal?: AbortSignal): Promise<Partial<EvacuationRecord>> {
      runs.push(id);
      if (!finishes && !signal?.aborted) await new Promise((r) => signal?.addEventListener('abort', r, { once: true }));
      return { id, state: finishes ? 'completed' : 'running' };
    },
  };
  return { runs, processor: new EvacuationsProcessor(coordinator as unknown as EvacuationCoordinator) };
}

/** A BullMQ worker running `processor`, given to it as @nestjs/bullmq's explorer gives it (WorkerHost's `_worker`). */
function workerFor(processor: EvacuationsProcessor, queuePrefix = prefix): Worker {
  const worker = new Worker(EVACUATIONS_QUEUE, (job: Job, token?: string) => processor.process(job, token), {
    ...EVACUATION_WORKER_OPTIONS,
    connection,
    prefix: queuePrefix,
  });
  (processor as unknown as { _worker: Worker })._worker = worker;
  return worker;
}

describe('EvacuationsProcessor on shutdown (BullMQ on Redis)', () => {
  beforeAll(() => startRedis(PORT), 60_000);
  afterAll(() => stopRedis(PORT), 60_000);

  it('hands a running evacuation back to the queue at once, and another replica finishes it', async () => {
    const queue = new Queue(EVACUATIONS_QUEUE, { connection, prefix });
    const a = fakeCoordinator(false);
    const b = fakeCoordinator(true);
    const workerA = workerFor(a.processor);
    let workerB: Worker | undefined;
    const jobId = evacuateJobId('evac-1');
    try {
      await queue.add(EVACUATE_JOB, { evacuationId: 'evac-1' }, { ...EVACUATE_JOB_OPTIONS, jobId });
      await until('replica A to run it', () => Promise.resolve(a.runs.length ? true : undefined), 10_000, 25);

      const stopStarted = Date.now();
      await a.processor.onModuleDestroy();
      await workerA.close();
      // The stop waited for no evacuation (the fake would have run forever).
      expect(Date.now() - stopStarted).toBeLessThan(5_000);
      const back = (await queue.getJob(jobId))!;
      expect(['delayed', 'wait', 'waiting', 'prioritized']).toContain(await back.getState());
      expect(back.failedReason).toBeFalsy();

      workerB = workerFor(b.processor);
      const done = await until(
        'replica B to finish it',
        async () => {
          const job = await queue.getJob(jobId);
          return (await job?.getState()) === 'completed' ? job : undefined;
        },
        10_000,
        25,
      );
      expect(b.runs).toEqual(['evac-1']);
      // A took no job after it began to stop (it would have taken this one again, due at once).
      expect(a.runs).toEqual(['evac-1']);
      expect(done.returnvalue).toEqual({ state: 'completed' });
      expect(done.failedReason).toBeFalsy();
    } finally {
      await workerA.close();
      await workerB?.close();
      await queue.close();
    }
  }, 30_000);

  it('a replica stopping with nothing running stops at once; a finished evacuation is not handed back', async () => {
    const queue = new Queue(EVACUATIONS_QUEUE, { connection, prefix: `${prefix}-2` });
    const c = fakeCoordinator(true);
    const worker = workerFor(c.processor, `${prefix}-2`);
    try {
      const jobId = evacuateJobId('evac-2');
      await queue.add(EVACUATE_JOB, { evacuationId: 'evac-2' }, { ...EVACUATE_JOB_OPTIONS, jobId });
      await until(
        'it to complete',
        async () => ((await (await queue.getJob(jobId))?.getState()) === 'completed' ? true : undefined),
        10_000,
        25,
      );
      const t0 = Date.now();
      await c.processor.onModuleDestroy();
      expect(Date.now() - t0).toBeLessThan(1_000);
      expect(c.runs).toEqual(['evac-2']);
    } finally {
      await worker.close();
      await queue.close();
    }
  }, 30_000);

  it("a killed replica's evacuation is resumed by another within the lock and stalled-check periods", async () => {
    const queuePrefix = `${prefix}-3`;
    const queue = new Queue(EVACUATIONS_QUEUE, { connection, prefix: queuePrefix });
    const a = fakeCoordinator(false);
    const b = fakeCoordinator(true);
    const workerA = workerFor(a.processor, queuePrefix);
    let workerB: Worker | undefined;
    const jobId = evacuateJobId('evac-3');
    try {
      await queue.add(EVACUATE_JOB, { evacuationId: 'evac-3' }, { ...EVACUATE_JOB_OPTIONS, jobId });
      await until('replica A to run it', () => Promise.resolve(a.runs.length ? true : undefined), 10_000, 25);
      // Killed: its lock is no longer renewed and nothing is handed back (force: no wait, no hand-back).
      await workerA.close(true);
      const killedAt = Date.now();
      workerB = workerFor(b.processor, queuePrefix);
      await until(
        'replica B to finish it',
        async () => ((await (await queue.getJob(jobId))?.getState()) === 'completed' ? true : undefined),
        40_000,
        25,
      );
      const { lockDuration, stalledInterval } = EVACUATION_WORKER_OPTIONS;
      // Lock expiry plus at most two checks (a check sees a job stalled only if it was active at the one before).
      expect(Date.now() - killedAt).toBeLessThan(lockDuration! + 2 * stalledInterval! + 2_000);
      expect(b.runs).toEqual(['evac-3']);
    } finally {
      await workerB?.close();
      await queue.close();
    }
  }, 60_000);
});
