import { z } from 'zod';

/** The event stream's environment (see README "Events and the dashboard"), spread into app-config.ts. */
export const EventsEnv = z.object({
  /** Events the Redis stream keeps (approximately: `XADD MAXLEN ~`): the window a reconnecting client can replay. */
  SPOTLIFT_EVENTS_RETENTION: z.coerce.number().int().min(100).max(10_000_000).default(10_000),
  /** A comment line to every `GET /events` client this often, so proxies and clients see the link alive. */
  SPOTLIFT_EVENTS_HEARTBEAT_MS: z.coerce.number().int().min(100).max(300_000).default(15_000),
  /** Bytes a client may leave unread in this process before it is dropped (it reconnects with Last-Event-ID). */
  SPOTLIFT_EVENTS_CLIENT_BUFFER_BYTES: z.coerce
    .number()
    .int()
    .min(4_096)
    .max(256 << 20)
    .default(1 << 20),
});

export interface EventsSettings {
  retention: number;
  heartbeatMs: number;
  clientBufferBytes: number;
}

export function eventsSettings(e: z.infer<typeof EventsEnv>): EventsSettings {
  return {
    retention: e.SPOTLIFT_EVENTS_RETENTION,
    heartbeatMs: e.SPOTLIFT_EVENTS_HEARTBEAT_MS,
    clientBufferBytes: e.SPOTLIFT_EVENTS_CLIENT_BUFFER_BYTES,
  };
}
