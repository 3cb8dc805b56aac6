import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';

/** Errors that mean "Redis cannot be reached right now", as ioredis and BullMQ word them. */
const UNREACHABLE =
  /StoreUnavailable|ECONNREFUSED|ECONNRESET|EPIPE|ETIMEDOUT|EHOSTUNREACH|ENOTCONN|Connection is closed|Stream isn't writeable|enableOfflineQueue|Command timed out|MaxRetriesPerRequest|Reached the max retries|connect ETIMEDOUT|socket closed|LOADING/i;

export function isRedisUnreachableError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: string }).code ?? '';
  return UNREACHABLE.test(`${error.name} ${code} ${error.message}`);
}

/** Raised by our own time bounds around Redis calls that have none (BullMQ's Queue.add). */
export class StoreUnavailable extends Error {
  override readonly name = 'StoreUnavailable';
}

/**
 * Runs a Redis-bound call only while the link is up and gives up on it after `ms`: for clients with an
 * offline queue (BullMQ's), which would otherwise hold a request until Redis returns.
 */
export async function whileUp<T>(link: RedisLink, what: string, call: () => Promise<T>, ms = 1_000): Promise<T> {
  if (!link.isUp) throw new StoreUnavailable(`${what}: redis is unreachable`);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StoreUnavailable(`${what}: no answer from redis in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([call(), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The state of this process's link to Redis, from its own client: up once the client is ready, down from
 * the first error or close until the next ready. An outage is logged once when it starts and once when it
 * ends (with how long it lasted and how many errors it swallowed), not a stack trace per reconnect attempt.
 * Listeners of `onUp` run after every outage (re-seeding, write-back of the worker's journal).
 */
export class RedisLink {
  private readonly logger = new Logger('redis');
  private downSince: number | undefined;
  private lastDownEnd = 0;
  private swallowed = 0;
  private readonly upListeners: (() => Promise<void> | void)[] = [];
  /** Set at shutdown: the close that follows our own QUIT is no outage. */
  closing = false;

  constructor(private readonly client: Redis) {
    client.on('error', (error: Error) => this.down('client', error));
    client.on('close', () => this.down('client', new Error('connection closed')));
    client.on('ready', () => this.up());
  }

  /** True while the client is connected and ready: commands are sent, not refused. */
  get isUp(): boolean {
    return this.client.status === 'ready';
  }

  /** Whether an outage started or was going on at any time since `sinceMs` (epoch ms). */
  wasDownSince(sinceMs: number): boolean {
    return this.downSince !== undefined || this.lastDownEnd >= sinceMs;
  }

  /** Runs after every outage ends, once the client is ready again. Errors are logged, never thrown. */
  onUp(listener: () => Promise<void> | void): void {
    this.upListeners.push(listener);
  }

  /** Reports an error seen on any Redis connection (ours or BullMQ's): logged once per outage. */
  report(source: string, error: Error): void {
    if (isRedisUnreachableError(error)) {
      // Our client decides when an outage starts and ends; BullMQ's connections reconnect on their own
      // schedule, and one of their errors just after ours is back is the same outage's tail.
      if (this.isUp) this.swallowed++;
      else this.down(source, error);
    } else this.logger.warn({ msg: 'redis error', source, error: error.message });
  }

  private down(source: string, error: Error): void {
    if (this.closing) return;
    if (this.downSince !== undefined) {
      this.swallowed++;
      return;
    }
    this.downSince = Date.now();
    this.swallowed = 0;
    this.logger.warn({
      msg: 'redis unreachable: the API answers 503, running migrations continue from the local journal',
      source,
      error: error.message,
    });
  }

  private up(): void {
    if (this.downSince === undefined) return;
    const lastedMs = Date.now() - this.downSince;
    this.downSince = undefined;
    this.lastDownEnd = Date.now();
    this.logger.log({ msg: 'redis reachable again', lastedMs, errorsSuppressed: this.swallowed });
    for (const listener of this.upListeners) {
      void Promise.resolve()
        .then(listener)
        .catch((error: Error) => this.logger.error({ msg: 'after-outage task failed', error: error.message }));
    }
  }
}
