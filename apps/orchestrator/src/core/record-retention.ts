import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnApplicationShutdown } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { EvacuationRecord, MigrationRecord } from '@spotlift/domain';
import { EVACUATION_FINISHED, MIGRATION_FINISHED, RECORD_INDEXES, RedisRecords } from '@spotlift/store';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from './core.module.js';

/** How often finished records are trimmed (and once at start). */
export const RETENTION_EVERY_MS = 3_600_000;
/** Records deleted per term and round: a backlog (retention turned on late) goes in bounded steps. */
const PER_ROUND = 5_000;
/** Bumped when a kind's terms change: the next start rebuilds the term sets of every record once. */
const INDEX_VERSION = '2';

/**
 * Keeps Redis the size of what is current: finished migrations and evacuations created more than
 * SPOTLIFT_RECORD_RETENTION_DAYS ago are deleted (their events, metrics and logs outlive them elsewhere);
 * records that are not finished are never touched, however old. At start it also builds the term indexes of
 * records written before they existed (once per INDEX_VERSION, whichever replica comes first; a second one
 * doing it at the same time writes the same entries).
 */
@Injectable()
export class RecordRetention implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('retention');
  private timer: NodeJS.Timeout | undefined;
  private readonly migrations: RedisRecords<MigrationRecord>;
  private readonly evacuations: RedisRecords<EvacuationRecord>;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly config: AppConfig,
  ) {
    this.migrations = new RedisRecords(redis, config.redisPrefix, 'migration', { versioned: true });
    this.evacuations = new RedisRecords(redis, config.redisPrefix, 'evacuation', { versioned: true });
  }

  onApplicationBootstrap(): void {
    // Not awaited: a large backlog must not hold the start; errors are logged (Redis may be away).
    void this.reindexOnce()
      .then(() => this.trim())
      .catch((error: Error) => this.logger.warn({ msg: 'index/retention pass failed', error: error.message }));
    if (this.config.redis.retentionMs > 0) {
      this.timer = setInterval(() => {
        void this.trim().catch((error: Error) => this.logger.warn({ msg: 'retention failed', error: error.message }));
      }, RETENTION_EVERY_MS).unref();
    }
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  private async reindexOnce(): Promise<void> {
    const marker = `${this.config.redisPrefix}:index-version`;
    if ((await this.redis.get(marker)) === INDEX_VERSION) return;
    for (const kind of Object.keys(RECORD_INDEXES)) {
      const n = await new RedisRecords(this.redis, this.config.redisPrefix, kind).reindex();
      if (n) this.logger.log({ msg: 'term index built', kind, records: n });
    }
    await this.redis.set(marker, INDEX_VERSION);
  }

  /** One pass; returns how many records it deleted. */
  async trim(now = Date.now()): Promise<number> {
    const age = this.config.redis.retentionMs;
    if (age <= 0) return 0;
    const before = now - age;
    let deleted = 0;
    for (const state of MIGRATION_FINISHED) {
      deleted += (await this.migrations.trim(`state=${state}`, before, PER_ROUND, (m) => m.state === state)).length;
    }
    for (const state of EVACUATION_FINISHED) {
      deleted += (await this.evacuations.trim(`state=${state}`, before, PER_ROUND, (e) => e.state === state)).length;
    }
    if (deleted)
      this.logger.log({ msg: 'finished records trimmed', deleted, olderThan: new Date(before).toISOString() });
    return deleted;
  }
}
