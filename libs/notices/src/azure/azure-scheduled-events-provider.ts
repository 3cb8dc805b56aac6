import type { MetadataClient, MetadataResponse } from '../metadata-client.port.js';
import type { NoticeBatch } from '../notice-problem.js';
import type { NoticeSink, PollingNoticeProvider } from '../notice-provider.port.js';
import { NoticeSourceError } from '../notice-source.error.js';
import { watchByPolling } from '../abortable-sleep.js';
import { batch, classifyStatus, DEFAULT_MAX_PAST_MS, transportProblem, type ParseContext } from '../parse-context.js';
import {
  AZURE_METADATA_HEADER,
  AZURE_SCHEDULED_EVENTS_PATH,
  parseScheduledEvents,
  type AzureScheduledEvent,
} from './azure-scheduled-events-parser.js';

/** Options of {@link AzureScheduledEventsNoticeProvider}. */
export interface AzureScheduledEventsNoticeProviderOptions {
  nodeId: string;
  /** This VM's name as it appears in an event's `Resources` (IMDS `compute/name`). */
  vmName: string;
  client: MetadataClient;
  /** Microsoft recommends 1 s for short-notice events; 500 ms keeps worst-case detection under 1 s. */
  pollIntervalMs?: number;
  /** Per-request timeout once the service is up. aks-nth uses 5 s. */
  requestTimeoutMs?: number;
  /** The very first request enables the service and "can take up to 2 minutes". */
  firstRequestTimeoutMs?: number;
  maxPastMs?: number;
  now?: () => number;
}

/**
 * Azure Scheduled Events: polls the document, raises a notice per event that lists our VM, and offers
 * {@link acknowledge} (a `StartRequests` POST) for the caller to use when *its* policy says so (after the
 * evacuation, or when the deadline is near). An approval applies to every VM in the event, so only events
 * naming our VM can be acknowledged.
 */
export class AzureScheduledEventsNoticeProvider implements PollingNoticeProvider {
  readonly source = 'azure' as const;
  private readonly now: () => number;
  private enabled = false;
  private incarnation?: number;
  private own = new Map<string, AzureScheduledEvent>();

  constructor(private readonly options: AzureScheduledEventsNoticeProviderOptions) {
    this.now = options.now ?? Date.now;
  }

  /** The last `DocumentIncarnation` read, if any. */
  get documentIncarnation(): number | undefined {
    return this.incarnation;
  }

  /** Our events in the last document read (the ones {@link acknowledge} accepts). */
  ownEvents(): AzureScheduledEvent[] {
    return [...this.own.values()];
  }

  /** Polls until the signal aborts. */
  watch(sink: NoticeSink, signal: AbortSignal): Promise<void> {
    return watchByPolling((s) => this.poll(s), sink, this.options.pollIntervalMs ?? 500, signal, this.options.client);
  }

  /** Reads the document once. */
  async poll(signal?: AbortSignal): Promise<NoticeBatch> {
    const ctx: ParseContext = {
      nodeId: this.options.nodeId,
      source: 'azure',
      path: AZURE_SCHEDULED_EVENTS_PATH,
      receivedAt: new Date(this.now()),
      maxPastMs: this.options.maxPastMs ?? DEFAULT_MAX_PAST_MS,
    };
    const timeoutMs = this.enabled
      ? (this.options.requestTimeoutMs ?? 5_000)
      : (this.options.firstRequestTimeoutMs ?? 130_000);
    let res: MetadataResponse;
    try {
      res = await this.options.client.get(AZURE_SCHEDULED_EVENTS_PATH, AZURE_METADATA_HEADER, { timeoutMs, signal });
    } catch (err) {
      return batch([], [transportProblem(ctx, err, signal)]);
    }
    ctx.receivedAt = new Date(this.now());
    const status = classifyStatus(ctx, res, 'Azure Scheduled Events', { notFoundIsNone: false });
    if (status !== 'ok') return batch([], [status as Exclude<typeof status, 'none'>]);
    this.enabled = true;
    const result = parseScheduledEvents(ctx, res.body, this.options.vmName);
    if (result.incarnation !== undefined) {
      // Only a usable document replaces what acknowledge() trusts; a garbled one leaves the last good one.
      this.incarnation = result.incarnation;
      this.own = new Map(result.ownEvents.map((e) => [e.EventId, e]));
    }
    return { notices: result.notices, problems: result.problems };
  }

  /**
   * Approves our event so Azure may start it early (`{"StartRequests":[{"EventId":…}]}`). Refuses an
   * event that is not in the last document or does not name our VM: an approval applies to every VM
   * listed. Throws {@link NoticeSourceError} on refusal or when Azure does not answer 200.
   */
  async acknowledge(eventId: string, signal?: AbortSignal): Promise<void> {
    const ev = this.own.get(eventId);
    if (!ev) {
      throw new NoticeSourceError(
        'azure_ack_not_ours',
        `refusing to acknowledge Azure event '${eventId}': it is not an event for VM '${this.options.vmName}' in the last document`,
        { eventId, vmName: this.options.vmName, incarnation: this.incarnation },
      );
    }
    const body = JSON.stringify({ StartRequests: [{ EventId: eventId }] });
    let res: MetadataResponse;
    try {
      res = await this.options.client.post(
        AZURE_SCHEDULED_EVENTS_PATH,
        { ...AZURE_METADATA_HEADER, 'Content-Type': 'application/json' },
        body,
        { timeoutMs: this.options.requestTimeoutMs ?? 5_000, signal },
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      const why = err instanceof Error ? err.message : String(err);
      throw new NoticeSourceError(
        'azure_ack_failed',
        `acknowledging Azure event '${eventId}' failed: ${why}`,
        { eventId },
        true,
      );
    }
    if (res.status !== 200) {
      throw new NoticeSourceError(
        'azure_ack_failed',
        `acknowledging Azure event '${eventId}' was answered ${res.status}`,
        { eventId, status: res.status },
        res.status >= 500,
      );
    }
  }
}
