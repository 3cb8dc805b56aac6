import type { Redis } from 'ioredis';
import type { SpotliftEvent } from '@spotlift/domain';

/** The stream every replica appends to and every `GET /events` reads: `<prefix>:events`. */
export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

/**
 * Appends events to the Redis stream (`XADD ... MAXLEN ~ retention`), never in the way of the save that caused
 * them: `publish` returns at once, commands go out in call order on the one connection (so a migration's events
 * keep their order), and a refused or failed XADD (Redis away: our client fails fast) is counted and reported to
 * `onError`, which logs it once per outage. Events lost that way are gone; the records hold the truth.
 */
export class EventPublisher {
  /** Events that could not be appended (Redis away or refusing), since boot. */
  dropped = 0;

  constructor(
    private readonly redis: Pick<Redis, 'xadd'>,
    private readonly key: string,
    private readonly retention: number,
    private readonly onError: (error: Error) => void = () => undefined,
  ) {}

  publish(events: SpotliftEvent[]): void {
    for (const e of events) {
      let sent: Promise<unknown>;
      try {
        sent = this.redis.xadd(
          this.key,
          'MAXLEN',
          '~',
          String(this.retention),
          '*',
          'type',
          e.type,
          'data',
          JSON.stringify(e),
        );
      } catch (error) {
        sent = Promise.reject(error instanceof Error ? error : new Error(String(error)));
      }
      sent.catch((error: Error) => {
        this.dropped++;
        this.onError(error);
      });
    }
  }
}
