import { BadRequestException, Controller, Get, Logger, Query, Req, Res } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiProduces, ApiQuery, ApiTags } from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { z } from 'zod';
import { STREAM_ID } from '@spotlift/domain';
import { RequireRole } from '../auth/roles.decorator.js';
import { AppConfig } from '../config/app-config.js';
import { compareIds, EventHub } from './event-hub.js';
import { SseClient } from './sse-client.js';

const Id = z.string().regex(/^[A-Za-z0-9._:@-]{1,128}$/, 'an id of plain characters');
const StreamId = z.string().regex(STREAM_ID, 'a stream id like 1765000000000-0');

/** The query: filters (all given ones must match) and, for clients that cannot set headers, where to resume. */
export const EventsQuery = z.strictObject({
  node: Id.optional(),
  workload: Id.optional(),
  migration: Id.optional(),
  evacuation: Id.optional(),
  lastEventId: StreamId.optional(),
});

/** How long a replay waits for a backed-up client to read before dropping it. */
const REPLAY_DRAIN_MS = 10_000;

@ApiTags('events')
@ApiBearerAuth()
@Controller('events')
export class EventsController {
  private readonly logger = new Logger('events');

  constructor(
    private readonly hub: EventHub,
    private readonly config: AppConfig,
  ) {}

  @Get()
  @RequireRole('viewer')
  @ApiProduces('text/event-stream')
  @ApiOperation({
    summary:
      'Server-Sent Events: migrations (phases, rounds, fill, downtime, state), nodes, notices, evacuations. ' +
      'Ids are stream ids; Last-Event-ID (header, or ?lastEventId=) replays what the retention window still holds.',
  })
  @ApiQuery({ name: 'node', required: false })
  @ApiQuery({ name: 'workload', required: false })
  @ApiQuery({ name: 'migration', required: false })
  @ApiQuery({ name: 'evacuation', required: false })
  @ApiQuery({ name: 'lastEventId', required: false })
  async stream(@Query() query: unknown, @Req() req: Request, @Res() res: Response): Promise<void> {
    const parsed = EventsQuery.safeParse(query);
    if (!parsed.success)
      throw new BadRequestException(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
    const { lastEventId: fromQuery, ...filter } = parsed.data;
    const header = req.headers['last-event-id'];
    if (header !== undefined && (typeof header !== 'string' || !STREAM_ID.test(header)))
      throw new BadRequestException('Last-Event-ID: a stream id like 1765000000000-0');
    const resumeAfter = header ?? fromQuery;

    const client = new SseClient(res, filter, this.config.events.clientBufferBytes, compareIds, (reason) =>
      this.logger.warn({ msg: 'event client dropped', reason, from: req.socket.remoteAddress }),
    );
    if (resumeAfter) client.resumeAfter(resumeAfter);
    // Live first (held while the replay runs), then the replay: the two overlap, so nothing falls between.
    const unsubscribe = await this.hub.subscribe({
      event: (e) => client.live(e),
      // Said to the client, which stays connected: events resume (none lost) once Redis is back. Not before
      // the head is written (that write would send a default one).
      reachable: (up) => res.headersSent && client.notice('redis', { reachable: up }),
      close: () => res.end(),
    });
    let heartbeat: NodeJS.Timeout | undefined;
    const closed = new Promise<void>((resolve) =>
      res.on('close', () => {
        unsubscribe();
        clearInterval(heartbeat);
        resolve();
      }),
    );
    try {
      // Read before answering: a Redis that fails here is still a clean 503, not a broken stream.
      let page = resumeAfter ? await this.hub.page(resumeAfter) : [];
      const gap = resumeAfter ? await this.hub.trimmedPast(resumeAfter) : false;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write('retry: 2000\n\n');
      if (gap) client.notice('gap', { after: resumeAfter, message: 'events after this id were trimmed; re-read' });
      while (page.length > 0 && !client.dropped) {
        for (const e of page) client.replayed(e);
        if (client.backedUp && !(await drained(res, closed, REPLAY_DRAIN_MS))) client.drop('did not read its replay');
        page = await this.hub.page(page[page.length - 1]!.id);
      }
      client.replayDone();
      heartbeat = setInterval(() => client.comment('heartbeat'), this.config.events.heartbeatMs);
      heartbeat.unref();
    } catch (error) {
      if (!res.headersSent) {
        unsubscribe();
        throw error;
      }
      client.drop(`replay failed: ${(error as Error).message}`);
    }
  }
}

/** Resolves true once the response drained, false when it closed or `ms` passed first. */
function drained(res: Response, closed: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    new Promise<boolean>((r) => res.once('drain', () => r(true))),
    closed.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(false), ms))),
  ]).finally(() => clearTimeout(timer));
}
