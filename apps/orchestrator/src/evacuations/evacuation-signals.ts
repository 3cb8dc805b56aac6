import { OnQueueEvent, QueueEventsHost, QueueEventsListener } from '@nestjs/bullmq';
import { EVACUATIONS_QUEUE, QueueName } from '@spotlift/queue';
import { RedisLink } from '../core/redis-link.js';

/** The timers a wait uses; unit tests pass ones that never fire, so only a signal moves the coordinator. */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}
const REAL_TIMERS: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

/**
 * What wakes an evacuation's coordinator: a migration or checkpoint job ended, or a notice changed an open
 * evacuation (an earlier deadline). Any signal wakes every waiting coordinator; each re-reads its own records,
 * so a signal says "look", never what happened. Signals are counted (`generation`), so one that arrives while a
 * coordinator is busy is not lost: its next wait returns at once.
 */
export class EvacuationSignals {
  private seen = 0;
  private readonly waiters = new Set<() => void>();

  constructor(private readonly timers: Timers = REAL_TIMERS) {}

  /** Signals so far; pass it to `next` to hear every signal after it. */
  get generation(): number {
    return this.seen;
  }

  /** Coordinators waiting now (a test knows from it that one has done all it would before the next signal). */
  get waiting(): number {
    return this.waiters.size;
  }

  wake(): void {
    this.seen += 1;
    for (const done of [...this.waiters]) done();
  }

  /** Resolves at the first signal after `since`, after `maxMs`, or when `abort` fires, whichever is first. */
  next(since: number, maxMs: number, abort?: AbortSignal): Promise<void> {
    if (this.seen > since || abort?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        this.timers.clearTimeout(timer);
        this.waiters.delete(done);
        abort?.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.timers.setTimeout(done, Math.max(0, maxMs));
      this.waiters.add(done);
      abort?.addEventListener('abort', done, { once: true });
    });
  }
}

/*
 * The queues' own events (BullMQ's QueueEvents, a Redis stream read by each listener) feed the signals. A stream
 * event can be missed (Redis restarted empty, or down while the job ended), so the coordinator also re-reads
 * its records on a slow timer: see SAFETY_NET_MS in evacuation-coordinator.ts. Errors (Redis away) are
 * reported once per outage through the RedisLink, like every other Redis client's.
 */

@QueueEventsListener(QueueName.Migrations)
export class MigrationEndListener extends QueueEventsHost {
  constructor(
    private readonly signals: EvacuationSignals,
    private readonly link: RedisLink,
  ) {
    super();
  }
  @OnQueueEvent('completed')
  onCompleted(): void {
    this.signals.wake();
  }
  @OnQueueEvent('failed')
  onFailed(): void {
    this.signals.wake();
  }
  @OnQueueEvent('error')
  onError(error: Error): void {
    this.link.report('bullmq events migrations', error);
  }
}

@QueueEventsListener(QueueName.Checkpoints)
export class CheckpointEndListener extends QueueEventsHost {
  constructor(
    private readonly signals: EvacuationSignals,
    private readonly link: RedisLink,
  ) {
    super();
  }
  @OnQueueEvent('completed')
  onCompleted(): void {
    this.signals.wake();
  }
  @OnQueueEvent('failed')
  onFailed(): void {
    this.signals.wake();
  }
  @OnQueueEvent('error')
  onError(error: Error): void {
    this.link.report('bullmq events checkpoints', error);
  }
}

/** An evacuation's job reports "progress" when a notice changed its record (EvacuationQueue.nudge). */
@QueueEventsListener(EVACUATIONS_QUEUE)
export class EvacuationChangeListener extends QueueEventsHost {
  constructor(
    private readonly signals: EvacuationSignals,
    private readonly link: RedisLink,
  ) {
    super();
  }
  @OnQueueEvent('progress')
  onProgress(): void {
    this.signals.wake();
  }
  @OnQueueEvent('error')
  onError(error: Error): void {
    this.link.report('bullmq events evacuations', error);
  }
}
