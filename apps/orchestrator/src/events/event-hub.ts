import { Inject, Injectable, Logger, type OnApplicationShutdown, ServiceUnavailableException } from '@nestjs/common';
import { Redis } from 'ioredis';
import type { DeliveredEvent, SpotliftEvent } from '@spotlift/domain';
import { AppConfig } from '../config/app-config.js';
import { redisOptions } from '../config/redis-config.js';
import { REDIS } from '../core/core.module.js';
import { RedisLink } from '../core/redis-link.js';
import { eventStreamKey } from './event-publisher.js';

/** What a listener hears: events, and whether the stream can be read at all (false while Redis is away). */
export interface Listener {
  event(e: DeliveredEvent): void;
  reachable(up: boolean): void;
  /** The process is shutting down: end the response (an open stream would hold the HTTP server's close). */
  close(): void;
}
/** Stream entries as ioredis returns them: [id, [field, value, ...]]. */
type Entry = [string, string[]];

/** Entries read per XRANGE call (a replay page). */
const PAGE = 500;
/**
 * Entries per live XREAD: what one burst may put in front of every client at once (events are a few hundred
 * bytes, so ~50 KB), well under a client's unread-bytes bound.
 */
const LIVE_BATCH = 100;
/** How long one XREAD waits for news before asking again (a Redis outage is noticed at most this late). */
const BLOCK_MS = 5_000;

export function toDelivered([id, fields]: Entry): DeliveredEvent | undefined {
  const i = fields.indexOf('data');
  if (i < 0 || i + 1 >= fields.length) return undefined;
  try {
    return { ...(JSON.parse(fields[i + 1]!) as SpotliftEvent), id };
  } catch {
    return undefined;
  }
}

/**
 * This process's one reader of the event stream: a single blocking XREAD loop on a connection of its own
 * (blocking reads cannot share our fail-fast client, whose commands time out after 1 s), fanned out to every
 * `GET /events` client here. It runs while someone listens. Replays for reconnecting clients go through the
 * shared client (XRANGE, paged). After a Redis outage it goes on from the last id it delivered, so listeners
 * miss nothing the stream still holds.
 */
@Injectable()
export class EventHub implements OnApplicationShutdown {
  private readonly logger = new Logger('events');
  private readonly listeners = new Set<Listener>();
  private readonly key: string;
  private reader: Redis | undefined;
  /** Id of the last entry delivered (or the stream's end when the loop started): the next XREAD's start. */
  private cursor: string | undefined;
  private starting: Promise<void> | undefined;
  private closed = false;
  /** Whether the last read worked; listeners hear each change (a dashboard says "Redis unreachable"). */
  private reachable = true;

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly config: AppConfig,
    private readonly link: RedisLink,
  ) {
    this.key = eventStreamKey(config.redisPrefix);
  }

  /**
   * Listens to everything appended from now on. Resolves once the reader knows where "now" is in the stream,
   * so a replay read after this call overlaps the live events instead of leaving a hole. 503 while Redis is away.
   */
  async subscribe(listener: Listener): Promise<() => void> {
    if (!this.link.isUp || (this.cursor !== undefined && !this.reachable))
      throw new ServiceUnavailableException('event stream: redis is unreachable; try again shortly');
    this.listeners.add(listener);
    const unsubscribe = () => void this.listeners.delete(listener);
    try {
      await this.start();
    } catch (error) {
      unsubscribe();
      throw new ServiceUnavailableException(`event stream: redis is unreachable (${(error as Error).message})`);
    }
    return unsubscribe;
  }

  /** Entries after `afterId` (exclusive), a page at a time, oldest first. */
  async page(afterId: string, count = PAGE): Promise<DeliveredEvent[]> {
    const entries = (await this.redis.xrange(this.key, `(${afterId}`, '+', 'COUNT', count)) as Entry[];
    return entries.map(toDelivered).filter((e): e is DeliveredEvent => e !== undefined);
  }

  /** True when `id` is no longer in the stream and older entries were trimmed: a client resuming there missed some. */
  async trimmedPast(id: string): Promise<boolean> {
    const [[first] = []] = (await this.redis.xrange(this.key, '-', '+', 'COUNT', 1)) as Entry[];
    if (!first || first === id) return false;
    const exact = await this.redis.xrange(this.key, id, id);
    return exact.length === 0 && compareIds(first, id) > 0;
  }

  private start(): Promise<void> {
    if (this.cursor !== undefined) return Promise.resolve();
    this.starting ??= (async () => {
      const last = (await this.redis.xrevrange(this.key, '+', '-', 'COUNT', 1)) as Entry[];
      this.cursor = last[0]?.[0] ?? '0-0';
      void this.loop();
    })().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async loop(): Promise<void> {
    if (!this.reader) {
      this.reader = new Redis({
        ...redisOptions(this.config.redis),
        enableOfflineQueue: false,
        maxRetriesPerRequest: 1,
        retryStrategy: (times) => Math.min(times * 200, 1_000),
      });
      this.reader.on('error', () => undefined); // our main client's RedisLink reports outages
      // Back as soon as the connection is, not after the next XREAD's block; the reads go on from the cursor.
      this.reader.on('ready', () => this.setReachable(true));
    }
    const reader = this.reader;
    while (!this.closed && this.listeners.size > 0) {
      if (reader.status !== 'ready') {
        // Connecting (at first, or after an outage): no read yet; unreachable only if it takes a while.
        if (!(await readyWithin(reader, 2_000))) this.setReachable(false);
        continue;
      }
      try {
        const res = await reader.xread('COUNT', LIVE_BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', this.key, this.cursor!);
        for (const entry of res?.[0]?.[1] ?? []) {
          this.cursor = entry[0];
          const e = toDelivered(entry);
          if (e) for (const l of this.listeners) l.event(e);
        }
      } catch (error) {
        if (this.closed) break;
        this.setReachable(false);
        this.logger.debug?.({ msg: 'event stream read failed; retrying', error: (error as Error).message });
        await new Promise((r) => setTimeout(r, 1_000).unref());
      }
    }
    // Nobody listens: the next subscriber starts from the stream's end again.
    this.cursor = undefined;
  }

  private setReachable(up: boolean): void {
    if (up === this.reachable) return;
    this.reachable = up;
    for (const l of this.listeners) l.reachable(up);
  }

  /** Runs before Nest closes the HTTP server, which would otherwise wait for every open stream. */
  onApplicationShutdown(): void {
    this.closed = true;
    for (const l of [...this.listeners]) l.close();
    this.listeners.clear();
    this.reader?.disconnect();
  }
}

function readyWithin(client: Redis, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => done(false), ms);
    const onReady = () => done(true);
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    client.once('ready', onReady);
  });
}

/** Orders stream ids (`<ms>-<seq>`) numerically. */
export function compareIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint];
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint];
  return am !== bm ? (am > bm ? 1 : -1) : as !== bs ? (as > bs ? 1 : -1) : 0;
}
