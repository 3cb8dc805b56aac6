import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { Response } from 'express';
import { DomainError } from '@spotlift/domain';
import { RedisLink, isRedisUnreachableError } from '../core/redis-link.js';

const STATUS: Record<string, number> = {
  not_found: 404,
  bad_request: 400,
  conflict: 409,
  node_unreachable: 502,
  host_key_mismatch: 502,
  // The node answered, but not usefully: every SSH channel busy, a channel refused, a command's output too large.
  node_busy: 503,
  ssh_channel_refused: 502,
  output_limit: 502,
  node_command_failed: 502,
  // A stored checkpoint's images (on the storage node) are damaged, missing or cannot be read.
  criu_bad_image: 502,
  images_unavailable: 502,
  // An encrypted checkpoint this orchestrator's key cannot open (no key, another key, a changed record).
  checkpoint_key: 409,
  // A node confirmed lost: nothing runs there until it is registered again.
  node_fenced: 409,
};

/** One place that turns errors into `{ code, message, ... }` bodies; unknown errors get an id and a log line. */
@Catch()
export class DomainExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('http');

  constructor(private readonly redis: RedisLink) {}

  catch(error: unknown, host: ArgumentsHost): void {
    const res = host.switchToHttp().getResponse<Response>();
    // Redis away: our client refuses commands at once (no offline queue), so the caller learns in
    // milliseconds, with a status that says "try again", and nothing was half-done (no record was written).
    if (
      isRedisUnreachableError(error) ||
      (!this.redis.isUp && !(error instanceof HttpException) && !(error instanceof DomainError))
    ) {
      res.setHeader('retry-after', '2');
      res.status(503).json({
        code: 'store_unavailable',
        message: 'Redis (jobs and records) is unreachable; nothing was changed, try again shortly',
      });
      return;
    }
    if (error instanceof DomainError) {
      res.status(STATUS[error.code] ?? 422).json({ code: error.code, message: error.message, ...error.meta });
      return;
    }
    if (error instanceof HttpException) {
      const body = error.getResponse();
      const message = typeof body === 'string' ? body : ((body as { message?: unknown }).message ?? error.message);
      res.status(error.getStatus()).json({ code: 'http_' + error.getStatus(), message });
      return;
    }
    const errorId = randomUUID();
    this.logger.error({ msg: 'unhandled error', errorId, err: String((error as Error)?.stack ?? error) });
    res.status(500).json({ code: 'internal', message: 'internal error', errorId });
  }
}
