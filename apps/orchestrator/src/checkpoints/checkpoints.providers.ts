/**
 * What checkpoints add to the app, in one place so app.module.ts only spreads these lists. Every role
 * serves the API (reads, requests, DELETE over SSH); worker roles run the take and restore jobs.
 */
import { BullModule } from '@nestjs/bullmq';
import type { DynamicModule, Provider, Type } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { CheckpointFlow, Clock, NodeOps, type PageTransport } from '@spotlift/engine';
import { QueueName } from '@spotlift/queue';
import type { CheckpointRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { CheckpointRepository, IndexedWorkloadRepository, RedisProcessIndex, RedisRecords } from '@spotlift/store';
import { DirectoryStreamer, NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';
import { PAGE_TRANSPORTS, REDIS, REDIS_PATIENT } from '../core/core.module.js';
import { CheckpointQueue } from './checkpoint-queue.js';
import { CheckpointsController } from './checkpoints.controller.js';
import { CheckpointsProcessor } from './checkpoints.processor.js';
import { CheckpointsService } from './checkpoints.service.js';
import { ForensicsService } from './forensics.service.js';
import { GuardService } from '../guard/guard.service.js';
import { GuardStatusRepository, guardStatuses } from '../guard/guard-status.js';

export const checkpointQueues: DynamicModule[] = [BullModule.registerQueue({ name: QueueName.Checkpoints })];

export const checkpointControllers: Type[] = [CheckpointsController];

export function checkpointProviders(config: AppConfig): Provider[] {
  return [
    {
      provide: CheckpointRepository,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisRecords(r, c.redisPrefix, 'checkpoint'),
    },
    {
      provide: CheckpointFlow,
      // Its records on the patient client: a take under way waits out a Redis outage (core.module.ts).
      inject: [REDIS_PATIENT, NodeOps, NodeShell, Clock, AppConfig, PAGE_TRANSPORTS],
      useFactory: (r: Redis, ops: NodeOps, shell: NodeShell, clock: Clock, c: AppConfig, transports: PageTransport[]) =>
        new CheckpointFlow(
          new RedisRecords<CheckpointRecord>(r, c.redisPrefix, 'checkpoint'),
          // Indexed as every workload writer is (libs/store process-index.ts), on the same patient client.
          new IndexedWorkloadRepository(
            new RedisRecords<WorkloadRecord>(r, c.redisPrefix, 'workload'),
            new RedisProcessIndex(r, c.redisPrefix),
          ),
          new RedisRecords<NodeRecord>(r, c.redisPrefix, 'node'),
          ops,
          new DirectoryStreamer(shell),
          clock,
          c.engine,
          transports,
        ),
    },
    CheckpointQueue,
    CheckpointsService,
    ForensicsService,
    // Guard mode's statuses are read by every role (GET /workloads/:id/guard); worker roles run the passes.
    { provide: GuardStatusRepository, inject: [REDIS, AppConfig], useFactory: guardStatuses },
    ...(config.runsWorker ? [CheckpointsProcessor, GuardService] : []),
  ];
}
