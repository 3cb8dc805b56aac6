import type { Redis } from 'ioredis';
import type { GuardStatus } from '@spotlift/domain';
import { RedisRecords, Repository } from '@spotlift/store';
import type { AppConfig } from '../config/app-config.js';

/** Guard statuses (the last decision and skip per workload), one record per guarded workload. */
export abstract class GuardStatusRepository extends Repository<GuardStatus> {}

export function guardStatuses(redis: Redis, config: AppConfig): GuardStatusRepository {
  return new RedisRecords<GuardStatus>(redis, config.redisPrefix, 'guard-status');
}
