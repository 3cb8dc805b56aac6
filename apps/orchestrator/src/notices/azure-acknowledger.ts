import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { evacuationFinished, type EvacuationAcknowledgement, type EvacuationRecord } from '@spotlift/domain';
import type { AzureScheduledEventsNoticeProvider } from '@spotlift/notices';
import { type EvacuationRepository, evacuationsOfNode } from '@spotlift/store';

/**
 * Approves our own Azure events (`StartRequests`) when our side is done: after the evacuation of the
 * node finished, or when the event's NotBefore is near and waiting longer gains nothing. Never earlier
 * (an approval lets Azure start at once), never for an event that does not name our VM (an approval
 * applies to every VM in the event; the provider refuses those), and once per event across replicas.
 */
export class AzureAcknowledger {
  private readonly logger = new Logger('notices');

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly evacuations: EvacuationRepository,
    private readonly leadMs: number,
  ) {}

  /** One pass over a provider's own events (called every second by the watchers). */
  async check(nodeId: string, provider: AzureScheduledEventsNoticeProvider, now = Date.now()): Promise<void> {
    const events = provider.ownEvents();
    if (events.length === 0) return;
    const mine = (await evacuationsOfNode(this.evacuations, nodeId)).filter((e) => e.notice.source === 'azure');
    for (const ev of events) {
      const evac = mine.find((e) => eventIdOf(e) === ev.EventId);
      if (!evac) continue;
      const notBefore = ev.NotBefore ? Date.parse(ev.NotBefore) : now;
      const why: EvacuationAcknowledgement['why'] | undefined = evacuationFinished(evac)
        ? 'evacuation-finished'
        : notBefore - now <= this.leadMs
          ? 'deadline-near'
          : undefined;
      if (!why) continue;
      const claimed = await this.redis.set(`${this.prefix}:azure-ack:${ev.EventId}`, '1', 'PX', 24 * 3_600_000, 'NX');
      if (claimed !== 'OK') continue;
      const ack: EvacuationAcknowledgement = { eventId: ev.EventId, at: new Date(now).toISOString(), ok: true, why };
      try {
        await provider.acknowledge(ev.EventId);
        this.logger.log({ msg: 'azure event acknowledged', node: nodeId, eventId: ev.EventId, why });
      } catch (error) {
        Object.assign(ack, { ok: false, error: (error as Error).message });
        this.logger.warn({ msg: 'azure acknowledgement failed', node: nodeId, eventId: ev.EventId, error: ack.error });
      }
      await this.recordAck(evac.id, ack);
    }
  }

  private async recordAck(id: string, ack: EvacuationAcknowledgement): Promise<void> {
    // A versioned update: the coordinator writing the same record at the same moment loses nothing of this.
    await this.evacuations.update(id, (rec) => {
      rec.acknowledgement = ack;
      rec.events.push({
        at: ack.at,
        msg: `Azure event ${ack.eventId} ${ack.ok ? 'approved' : 'not approved'} (${ack.why})`,
      });
    });
  }
}

/** The Azure EventId a notice was raised from (kept in its raw payload by the parser). */
export function eventIdOf(e: Pick<EvacuationRecord, 'notice'>): string | undefined {
  const raw = e.notice.raw as { event?: { EventId?: unknown } } | undefined;
  return typeof raw?.event?.EventId === 'string' ? raw.event.EventId : undefined;
}
