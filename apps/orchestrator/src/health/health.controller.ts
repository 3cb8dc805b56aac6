import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Redis } from 'ioredis';
import { Public } from '../common/auth.guard.js';
import { REDIS } from '../core/core.module.js';
import { RedisLink } from '../core/redis-link.js';

/**
 * Liveness (the process answers: never depends on Redis, so a Redis outage does not get the process
 * restarted mid-migration) and readiness (Redis answers), without a token, for probes. Readiness answers
 * 503 at once while the link is down, and within the client's 1 s command timeout when it hangs.
 */
@ApiTags('operations')
@Public()
@Controller('health')
export class HealthController {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly link: RedisLink,
  ) {}

  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(): Promise<{ status: 'ok'; redis: 'ok' }> {
    if (!this.link.isUp) throw new ServiceUnavailableException('redis: unreachable');
    try {
      await this.redis.ping();
    } catch (error) {
      throw new ServiceUnavailableException(`redis: ${(error as Error).message}`);
    }
    return { status: 'ok', redis: 'ok' };
  }
}
