import type { MetadataClient, MetadataResponse } from '../metadata-client.port.js';
import type { NoticeBatch } from '../notice-problem.js';
import type { NoticeSink, PollingNoticeProvider } from '../notice-provider.port.js';
import { abortableSleep } from '../abortable-sleep.js';
import {
  batch,
  classifyStatus,
  DEFAULT_MAX_PAST_MS,
  mergeBatches,
  problem,
  transportProblem,
  type ParseContext,
} from '../parse-context.js';
import {
  GCP_FLAVOR,
  GCP_FLAVOR_HEADER,
  GCP_KEYS,
  GCP_METADATA_PREFIX,
  parseMaintenanceEvent,
  parsePreempted,
} from './gcp-metadata-parsers.js';

/** Options of {@link GcpMetadataNoticeProvider}. */
export interface GcpMetadataNoticeProviderOptions {
  nodeId: string;
  client: MetadataClient;
  /** Preemption to power-off: 30 s for Spot VMs; 120 s when `preemptionNoticeDuration` is set. */
  preemptionLeadMs?: number;
  /** Host-maintenance notice: GCP announces maintenance about 60 s ahead. */
  maintenanceLeadMs?: number;
  /** Set false to watch only `instance/preempted`. */
  watchMaintenance?: boolean;
  /**
   * Server-side hang per request (`timeout_sec`). Bounded so a silently dead connection is noticed and
   * replaced within this time; the request's own timeout is this plus `requestTimeoutMs`.
   */
  hangTimeoutSec?: number;
  /** Timeout of non-hanging reads, and margin on top of a hang. Default 2 s. */
  requestTimeoutMs?: number;
  /** Wait after an error before retrying. Google's sample retries a 503 after 1 s. */
  retryDelayMs?: number;
  now?: () => number;
}

type Parser = (ctx: ParseContext, body: string) => NoticeBatch;

/**
 * GCP Compute Engine metadata: hanging GETs (`wait_for_change=true&last_etag=…`) on `instance/preempted`
 * and `instance/maintenance-event`, so a change is seen as soon as the server knows it, with no polling.
 */
export class GcpMetadataNoticeProvider implements PollingNoticeProvider {
  readonly source = 'gcp' as const;
  private readonly now: () => number;

  constructor(private readonly options: GcpMetadataNoticeProviderOptions) {
    this.now = options.now ?? Date.now;
  }

  /** Runs one hanging-GET loop per key until the signal aborts. */
  async watch(sink: NoticeSink, signal: AbortSignal): Promise<void> {
    const loops = [this.hangLoop(GCP_KEYS.preempted, this.preemptedParser(), sink, signal)];
    if (this.options.watchMaintenance ?? true) {
      loops.push(this.hangLoop(GCP_KEYS.maintenanceEvent, this.maintenanceParser(), sink, signal));
    }
    await Promise.all(loops);
  }

  /** Reads both keys once, without hanging. */
  async poll(signal?: AbortSignal): Promise<NoticeBatch> {
    const reads = [this.readOnce(GCP_KEYS.preempted, undefined, this.preemptedParser(), signal)];
    if (this.options.watchMaintenance ?? true) {
      reads.push(this.readOnce(GCP_KEYS.maintenanceEvent, undefined, this.maintenanceParser(), signal));
    }
    return mergeBatches((await Promise.all(reads)).map((r) => r.batch));
  }

  private preemptedParser(): Parser {
    const lead = this.options.preemptionLeadMs ?? 30_000;
    return (ctx, body) => parsePreempted(ctx, body, lead);
  }

  private maintenanceParser(): Parser {
    const lead = this.options.maintenanceLeadMs ?? 60_000;
    return (ctx, body) => parseMaintenanceEvent(ctx, body, lead);
  }

  /**
   * First a plain read (a hanging GET without an etag would wait for the *next* change and miss a value
   * that is already TRUE), then hanging reads that pass the last etag, so a change that happens between
   * two requests makes the next one return at once instead of being lost.
   */
  private async hangLoop(key: string, parse: Parser, sink: NoticeSink, signal: AbortSignal): Promise<void> {
    let etag: string | undefined;
    while (!signal.aborted) {
      let result: { batch: NoticeBatch; etag?: string; retry: boolean };
      try {
        result = await this.readOnce(key, etag, parse, signal);
      } catch (err) {
        if (signal.aborted) return;
        throw err;
      }
      if (signal.aborted) return;
      result.batch.problems.forEach((p) => sink.problem(p));
      for (const n of result.batch.notices) await sink.notice(n);
      if (result.etag !== undefined) etag = result.etag;
      if (result.retry) await abortableSleep(this.options.retryDelayMs ?? 1_000, signal);
    }
  }

  private async readOnce(
    key: string,
    lastEtag: string | undefined,
    parse: Parser,
    signal?: AbortSignal,
  ): Promise<{ batch: NoticeBatch; etag?: string; retry: boolean }> {
    const hangSec = this.options.hangTimeoutSec ?? 60;
    const margin = this.options.requestTimeoutMs ?? 2_000;
    const query =
      lastEtag === undefined
        ? ''
        : `?wait_for_change=true&last_etag=${encodeURIComponent(lastEtag)}&timeout_sec=${hangSec}`;
    const ctx: ParseContext = {
      nodeId: this.options.nodeId,
      source: 'gcp',
      path: GCP_METADATA_PREFIX + key,
      receivedAt: new Date(this.now()),
      maxPastMs: DEFAULT_MAX_PAST_MS,
    };
    const startedAt = this.now();
    let res: MetadataResponse;
    try {
      res = await this.options.client.get(
        ctx.path + query,
        { [GCP_FLAVOR_HEADER]: GCP_FLAVOR },
        { timeoutMs: lastEtag === undefined ? margin : hangSec * 1000 + margin, signal },
      );
    } catch (err) {
      return { batch: batch([], [transportProblem(ctx, err, signal)]), retry: true };
    }
    // The deadline counts from when the change reached us, not from when the hang began.
    ctx.receivedAt = new Date(this.now());
    const status = classifyStatus(ctx, res, 'the GCP metadata server', { notFoundIsNone: false });
    if (status !== 'ok') return { batch: batch([], [status as Exclude<typeof status, 'none'>]), retry: true };
    // A genuine metadata server always answers with Metadata-Flavor: Google; anything else is a proxy,
    // a captive portal or the wrong host, and its body must not be believed.
    if (res.headers[GCP_FLAVOR_HEADER.toLowerCase()] !== GCP_FLAVOR) {
      const msg = `answer lacks '${GCP_FLAVOR_HEADER}: ${GCP_FLAVOR}'; not the GCP metadata server`;
      return {
        batch: batch([], [problem(ctx, 'wrong_server', msg, { status: res.status, body: res.body })]),
        retry: true,
      };
    }
    const etag = res.headers.etag;
    const parsed = parse(ctx, res.body);
    if (!etag) {
      // Without an etag a hanging GET could miss a change; fall back to plain reads at the retry pace.
      const msg = 'answer has no ETag header; falling back to plain polling';
      return {
        batch: { ...parsed, problems: [...parsed.problems, problem(ctx, 'invalid_payload', msg)] },
        retry: true,
      };
    }
    // A hang that returns at once with the etag we sent did not hang (a proxy dropping the query?):
    // pace it like an error instead of spinning.
    const didNotHang = lastEtag !== undefined && etag === lastEtag && this.now() - startedAt < 100;
    return { batch: parsed, etag, retry: parsed.problems.length > 0 || didNotHang };
  }
}
