/**
 * What capacity rebalancing adds to the app, in one place so app.module.ts only spreads these lists. Every
 * role serves the REST calls; worker roles also evaluate on the schedule (see RebalanceService).
 */
import type { Provider, Type } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { RebalanceController } from './rebalance.controller.js';
import { RebalanceMetrics } from './rebalance-metrics.js';
import { RebalanceService } from './rebalance.service.js';
import { ReleasableMarks } from './releasable-marks.js';
import { RebalanceStore, RedisRebalanceStore } from './rebalance-store.js';

export const rebalanceControllers: Type[] = [RebalanceController];
export const rebalanceProviders: Provider[] = [
  RebalanceMetrics,
  {
    provide: RebalanceStore,
    inject: [REDIS, AppConfig],
    useFactory: (redis: Redis, config: AppConfig) => new RedisRebalanceStore(redis, config.redisPrefix),
  },
  ReleasableMarks,
  RebalanceService,
];
