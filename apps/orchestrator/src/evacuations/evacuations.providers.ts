/**
 * What evacuations and notices add to the app, in one place so app.module.ts only spreads these lists.
 * Roles: every role accepts `POST /notices` and serves the reads; replicas that run workers (`all`,
 * `worker`) also run the evacuation coordinator and watch the nodes' metadata services, because they are
 * the ones with SSH reach to the nodes (an `api` replica may sit where it cannot reach them).
 */
import { BullModule } from '@nestjs/bullmq';
import type { DynamicModule, Provider, Type } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { crossSourceDedupKey, NoticeDeduplicator, RedisDedupStore } from '@spotlift/notices';
import { EVACUATIONS_QUEUE } from '@spotlift/queue';
import type { EvacuationRecord } from '@spotlift/domain';
import {
  EvacuationRepository,
  JournalCopies,
  type JournaledRepository,
  RedisRecords,
  VersionedEvacuationRecords,
} from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { EventPublisher } from '../events/event-publisher.js';
import { EventedEvacuations } from '../events/evented-repository.js';
import { evacuationEvents } from '../events/record-events.js';
import { EVACUATION_JOURNAL, REDIS } from '../core/core.module.js';
import { KubeCordoner, kubeApiProviders } from '../notices/kube-cordon.js';
import { NoticeIntake } from '../notices/notice-intake.service.js';
import { NoticeWatchers } from '../notices/notice-watchers.service.js';
import { NoticesController } from '../notices/notices.controller.js';
import { EvacuationCoordinator } from './evacuation-coordinator.js';
import { EvacuationQueue } from './evacuation-queue.js';
import { PairTrials } from './pair-trials.js';
import { RedisTrialLease, TrialLease } from './trial-lease.js';
import {
  CheckpointEndListener,
  EvacuationChangeListener,
  EvacuationSignals,
  MigrationEndListener,
} from './evacuation-signals.js';
import { EvacuationsController } from './evacuations.controller.js';
import { EvacuationsProcessor } from './evacuations.processor.js';
import { DEADLINE_TOLERANCE_MS, EvacuationsService } from './evacuations.service.js';

export const evacuationQueues: DynamicModule[] = [BullModule.registerQueue({ name: EVACUATIONS_QUEUE })];

export const evacuationControllers: Type[] = [EvacuationsController, NoticesController];

export function evacuationProviders(config: AppConfig): Provider[] {
  return [
    {
      // Versioned; each copy Redis took is journaled too, for a Redis that comes back empty (core.module.ts);
      // saves publish notices, plans, jobs and outcomes to the event stream (events/record-events.ts).
      provide: EvacuationRepository,
      inject: [REDIS, AppConfig, EVACUATION_JOURNAL, EventPublisher],
      useFactory: (r: Redis, c: AppConfig, j: JournaledRepository<EvacuationRecord>, p: EventPublisher) =>
        new EventedEvacuations(
          new VersionedEvacuationRecords(
            new JournalCopies(
              new RedisRecords<EvacuationRecord>(r, c.redisPrefix, 'evacuation', { versioned: true }),
              j,
            ),
          ),
          p,
          evacuationEvents,
        ),
    },
    {
      // One claim per (node, kind) across channels and replicas: the IMDS poll, a handler's taint and a
      // pushed notice for the same node and kind raise one evacuation. Held at most dedupMaxTtlMs; a notice
      // with an earlier deadline passes it (and re-plans the open evacuation: EvacuationsService.join).
      provide: NoticeDeduplicator,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) =>
        new NoticeDeduplicator(new RedisDedupStore(r, `${c.redisPrefix}:notice-dedup:`), {
          keyOf: crossSourceDedupKey,
          maxTtlMs: c.notices.dedupMaxTtlMs,
          earlierByMs: DEADLINE_TOLERANCE_MS,
        }),
    },
    ...kubeApiProviders(config),
    KubeCordoner,
    EvacuationQueue,
    EvacuationsService,
    NoticeIntake,
    ...(config.runsWorker
      ? [
          EvacuationCoordinator,
          PairTrials,
          {
            provide: TrialLease,
            inject: [REDIS, AppConfig],
            useFactory: (r: Redis, c: AppConfig) => new RedisTrialLease(r, `${c.redisPrefix}:pair-trials:lease`),
          },
          EvacuationsProcessor,
          NoticeWatchers,
          // Queue events wake the coordinators (see evacuation-signals.ts).
          { provide: EvacuationSignals, useFactory: () => new EvacuationSignals() },
          MigrationEndListener,
          CheckpointEndListener,
          EvacuationChangeListener,
        ]
      : []),
  ];
}
