import { Controller, Get, Inject, ServiceUnavailableException } from '@nestjs/common';
import { ApiTags } from '@nestjs/swagger';
import type { Redis } from 'ioredis';
import { Public } from '../common/auth.guard.js';
import { REDIS } from '../core/core.module.js';

/** Liveness (the process answers) and readiness (Redis answers), without a token, for probes. */
@ApiTags('operations')
@Public()
@Controller('health')
export class HealthController {
  constructor(@Inject(REDIS) private readonly redis: Redis) {}

  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(): Promise<{ status: 'ok'; redis: 'ok' }> {
    try {
      await this.redis.ping();
    } catch (error) {
      throw new ServiceUnavailableException(`redis: ${(error as Error).message}`);
    }
    return { status: 'ok', redis: 'ok' };
  }
}
