import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeHttpServer } from './fake-http-server.js';

const PATH = '/metadata/scheduledevents';
const VERSIONS = new Set(['2017-11-01', '2019-01-01', '2019-08-01', '2020-07-01']);

/** One event as Azure documents it. */
export interface FakeAzureEvent {
  EventId: string;
  EventType: string;
  ResourceType: string;
  Resources: string[];
  EventStatus: string;
  NotBefore: string;
  Description: string;
  EventSource: string;
  DurationInSeconds: number;
}

/** Options of {@link FakeAzureScheduledEventsServer}. */
export interface FakeAzureScheduledEventsServerOptions {
  /** Start an event (status Started, blank NotBefore) when it is acknowledged. Default false. */
  startOnAck?: boolean;
}

/**
 * Fake of Azure Scheduled Events (`/metadata/scheduledevents?api-version=…`): `Metadata: true` required
 * (400 without), api-version required, `DocumentIncarnation` incremented on every change of the event list,
 * `NotBefore` in RFC 1123, and `POST {"StartRequests":[{"EventId":…}]}` acknowledgements recorded (200 for a
 * well-formed request, 400 for a malformed one).
 */
export class FakeAzureScheduledEventsServer extends FakeHttpServer {
  /** Every acknowledged EventId, in order. */
  readonly acknowledgements: { eventId: string; at: number }[] = [];
  private incarnationValue = 1;
  private events: FakeAzureEvent[] = [];

  constructor(private readonly options: FakeAzureScheduledEventsServerOptions = {}) {
    super();
  }

  get documentIncarnation(): number {
    return this.incarnationValue;
  }

  /** Schedules an event (defaults: a Preempt of `vm-spot` 30 s from now); returns its EventId. */
  scheduleEvent(event: Partial<Omit<FakeAzureEvent, 'NotBefore'>> & { NotBefore?: Date | string } = {}): string {
    const notBefore = event.NotBefore ?? new Date(Date.now() + 30_000);
    const full: FakeAzureEvent = {
      EventId: event.EventId ?? randomUUID().toUpperCase(),
      EventType: event.EventType ?? 'Preempt',
      ResourceType: event.ResourceType ?? 'VirtualMachine',
      Resources: event.Resources ?? ['vm-spot'],
      EventStatus: event.EventStatus ?? 'Scheduled',
      NotBefore: notBefore instanceof Date ? notBefore.toUTCString() : notBefore,
      Description: event.Description ?? 'The Spot Virtual Machine is being deleted.',
      EventSource: event.EventSource ?? 'Platform',
      DurationInSeconds: event.DurationInSeconds ?? -1,
    };
    this.events.push(full);
    this.incarnationValue++;
    return full.EventId;
  }

  /** Marks an event Started (NotBefore becomes blank, as documented). */
  startEvent(eventId: string): void {
    const ev = this.events.find((e) => e.EventId === eventId);
    if (!ev) throw new Error(`no event ${eventId}`);
    ev.EventStatus = 'Started';
    ev.NotBefore = '';
    this.incarnationValue++;
  }

  /** Removes an event (finished or cancelled: Azure has no Completed status). */
  removeEvent(eventId: string): void {
    const before = this.events.length;
    this.events = this.events.filter((e) => e.EventId !== eventId);
    if (this.events.length !== before) this.incarnationValue++;
  }

  clearEvents(): void {
    if (this.events.length === 0) return;
    this.events = [];
    this.incarnationValue++;
  }

  protected handle(req: IncomingMessage, res: ServerResponse, body: string, url: URL): void {
    if (url.pathname !== PATH) return this.send(res, 404, { error: 'Not found' });
    if (req.headers['x-forwarded-for'] !== undefined)
      return this.send(res, 400, { error: 'Bad request. Request with X-Forwarded-For header not allowed' });
    if (req.headers.metadata !== 'true')
      return this.send(res, 400, { error: 'Bad request. Required metadata header not specified' });
    const version = url.searchParams.get('api-version');
    if (version === null)
      return this.send(res, 400, { error: 'Bad request. api-version was not specified in the request' });
    if (!VERSIONS.has(version))
      return this.send(res, 400, {
        error: 'Bad request. api-version is invalid or was not specified in the proper format',
      });
    if (req.method === 'GET') {
      return this.send(res, 200, { DocumentIncarnation: this.incarnationValue, Events: this.events });
    }
    if (req.method !== 'POST') return this.send(res, 405, { error: 'Method not allowed' });
    const ids = startRequestIds(body);
    if (!ids) return this.send(res, 400, { error: 'Bad request. Malformed StartRequests' });
    for (const eventId of ids) {
      this.acknowledgements.push({ eventId, at: Date.now() });
      const ev = this.events.find((e) => e.EventId === eventId);
      if (this.options.startOnAck && ev && ev.EventStatus === 'Scheduled') this.startEvent(eventId);
    }
    res.writeHead(200);
    res.end();
  }

  private send(res: ServerResponse, status: number, data: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(data));
  }
}

function startRequestIds(body: string): string[] | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  const list = (parsed as { StartRequests?: unknown } | null)?.StartRequests;
  if (!Array.isArray(list) || list.length === 0) return undefined;
  const ids = list.map((r) => (r as { EventId?: unknown } | null)?.EventId);
  return ids.every((id): id is string => typeof id === 'string' && id !== '') ? ids : undefined;
}
