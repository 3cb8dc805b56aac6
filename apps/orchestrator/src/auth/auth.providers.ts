/**
 * What access control adds to the app (tokens, the audit log, the guard), in one place so app.module.ts
 * only spreads these lists.
 */
import { Logger, type Provider, type Type } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { Redis } from 'ioredis';
import { AuditLog, RedisAuditLog, RedisTokenRepository, TokenRepository } from '@spotlift/store';
import { AuthGuard } from '../common/auth.guard.js';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { AuditRecorder } from './audit-recorder.js';
import { TokenService } from './token-service.js';
import { AuditController, TokensController } from './tokens.controller.js';

export const authControllers: Type[] = [TokensController, AuditController];

export const authProviders: Provider[] = [
  {
    provide: TokenRepository,
    inject: [REDIS, AppConfig],
    useFactory: (r: Redis, c: AppConfig) => new RedisTokenRepository(r, c.redisPrefix),
  },
  {
    provide: AuditLog,
    inject: [REDIS, AppConfig],
    useFactory: (r: Redis, c: AppConfig) => new RedisAuditLog(r, c.redisPrefix),
  },
  {
    provide: TokenService,
    inject: [TokenRepository, AppConfig],
    useFactory: (repo: TokenRepository, c: AppConfig) => new TokenService(repo, c.apiToken),
  },
  {
    provide: AuditRecorder,
    inject: [AuditLog],
    useFactory: (log: AuditLog) => {
      const logger = new Logger('audit');
      return new AuditRecorder(log, (msg) => logger.warn(msg));
    },
  },
  { provide: APP_GUARD, useClass: AuthGuard },
];
