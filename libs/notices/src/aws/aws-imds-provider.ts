import type { MetadataClient, MetadataResponse } from '../metadata-client.port.js';
import type { NoticeKind } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import type { NoticeSink, PollingNoticeProvider } from '../notice-provider.port.js';
import {
  batch,
  classifyStatus,
  DEFAULT_MAX_PAST_MS,
  mergeBatches,
  problem,
  transportProblem,
  type ParseContext,
} from '../parse-context.js';
import { watchByPolling } from '../abortable-sleep.js';
import {
  DEFAULT_AWS_MAINTENANCE_CODES,
  IMDS_PATHS,
  MALFORMED_INSTANCE_ACTION,
  parseInstanceAction,
  parseMaintenanceEvents,
  parseRebalance,
  parseTerminationTime,
} from './aws-imds-parsers.js';
import { IMDS_TOKEN_HEADER, ImdsTokenCache, type ImdsTokenCacheOptions } from './imds-token-cache.js';

/** Options of {@link AwsImdsNoticeProvider}. */
export interface AwsImdsNoticeProviderOptions {
  nodeId: string;
  /** Reaches this node's IMDS (fetch on the node, or curl over SSH). */
  client: MetadataClient;
  /**
   * Poll period for `spot/instance-action` and the rebalance recommendation. AWS advises <= 5 s and NTH
   * uses 2 s; IMDS is local and cheap, so 500 ms keeps worst-case detection under 1 s.
   */
  pollIntervalMs?: number;
  /** Scheduled events are announced days ahead: "every few minutes is enough". Default 60 s. */
  maintenanceIntervalMs?: number;
  /** Set false to skip the rebalance recommendation. */
  watchRebalance?: boolean;
  /** Set false to skip scheduled maintenance events. */
  watchMaintenance?: boolean;
  /** Rebalance carries no deadline: assume the ITN could follow at once, i.e. 2 minutes. */
  rebalanceLeadMs?: number;
  /** Scheduled-event code → kind; codes not listed are reported as `unknown_action`. */
  maintenanceCodes?: Readonly<Record<string, NoticeKind>>;
  maxPastMs?: number;
  /** Per-request timeout (NTH: 2 s). */
  requestTimeoutMs?: number;
  token?: Omit<ImdsTokenCacheOptions, 'now' | 'timeoutMs'>;
  now?: () => number;
}

/**
 * AWS EC2 instance metadata (IMDSv2): polls `spot/instance-action` (404 = nothing),
 * `events/recommendations/rebalance` and `events/maintenance/scheduled`, with a cached session token.
 */
export class AwsImdsNoticeProvider implements PollingNoticeProvider {
  readonly source = 'aws' as const;
  private readonly tokens: ImdsTokenCache;
  private readonly now: () => number;
  private lastMaintenanceCheck = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: AwsImdsNoticeProviderOptions) {
    this.now = options.now ?? Date.now;
    this.tokens = new ImdsTokenCache(options.client, {
      ...options.token,
      timeoutMs: options.requestTimeoutMs ?? 2_000,
      now: this.now,
    });
  }

  /** Polls until the signal aborts; each poll's notices and problems go to the sink. */
  watch(sink: NoticeSink, signal: AbortSignal): Promise<void> {
    return watchByPolling((s) => this.poll(s), sink, this.options.pollIntervalMs ?? 500, signal, this.options.client);
  }

  /** Reads every enabled path once (in parallel). */
  async poll(signal?: AbortSignal): Promise<NoticeBatch> {
    const now = this.now();
    const reads: Promise<NoticeBatch>[] = [this.readInstanceAction(signal)];
    if (this.options.watchRebalance ?? true) {
      const lead = this.options.rebalanceLeadMs ?? 120_000;
      reads.push(this.read(IMDS_PATHS.rebalance, (ctx, body) => parseRebalance(ctx, body, lead), signal));
    }
    const maintenanceDue = now - this.lastMaintenanceCheck >= (this.options.maintenanceIntervalMs ?? 60_000);
    if ((this.options.watchMaintenance ?? true) && maintenanceDue) {
      this.lastMaintenanceCheck = now;
      const codes = this.options.maintenanceCodes ?? DEFAULT_AWS_MAINTENANCE_CODES;
      reads.push(this.read(IMDS_PATHS.maintenance, (ctx, body) => parseMaintenanceEvents(ctx, body, codes), signal));
    }
    return mergeBatches(await Promise.all(reads));
  }

  /**
   * `spot/instance-action`; when its body is malformed, also `spot/termination-time` (the other documented
   * path), so a broken JSON body cannot hide a termination. The instance-action problem is still reported.
   */
  private async readInstanceAction(signal?: AbortSignal): Promise<NoticeBatch> {
    const action = await this.read(IMDS_PATHS.instanceAction, (ctx, body) => parseInstanceAction(ctx, body), signal);
    const malformed = action.problems.find((p) => MALFORMED_INSTANCE_ACTION.has(p.code));
    if (action.notices.length > 0 || !malformed) return action;
    const fallback = await this.read(
      IMDS_PATHS.terminationTime,
      (ctx, body) => parseTerminationTime(ctx, body, malformed.message.replace(`${malformed.path}: `, '')),
      signal,
    );
    return mergeBatches([action, fallback]);
  }

  private async read(
    path: string,
    parse: (ctx: ParseContext, body: string) => NoticeBatch,
    signal?: AbortSignal,
  ): Promise<NoticeBatch> {
    const ctx: ParseContext = {
      nodeId: this.options.nodeId,
      source: 'aws',
      path,
      receivedAt: new Date(this.now()),
      maxPastMs: this.options.maxPastMs ?? DEFAULT_MAX_PAST_MS,
    };
    let res: MetadataResponse | NoticeBatch;
    try {
      res = await this.getWithToken(ctx, signal);
    } catch (err) {
      return batch([], [transportProblem(ctx, err, signal)]);
    }
    if ('notices' in res) return res;
    ctx.receivedAt = new Date(this.now());
    const status = classifyStatus(ctx, res, 'IMDS');
    if (status === 'none') return batch();
    if (status !== 'ok') return batch([], [status]);
    return parse(ctx, res.body);
  }

  /** GET with the session token; on 401 the token is dropped and the GET retried once with a fresh one. */
  private async getWithToken(ctx: ParseContext, signal?: AbortSignal): Promise<MetadataResponse | NoticeBatch> {
    let res: MetadataResponse | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      const token = await this.tokens.get(signal);
      if (!token.ok) {
        const code = token.status === undefined ? 'transport' : token.status >= 500 ? 'unavailable' : 'unauthorized';
        const hint = token.status === 403 ? ' (IMDS disabled, or PUT rejected)' : '';
        return batch([], [problem(ctx, code, `no IMDSv2 token: ${token.message}${hint}`, token)]);
      }
      res = await this.options.client.get(
        ctx.path,
        { [IMDS_TOKEN_HEADER]: token.token },
        { timeoutMs: this.options.requestTimeoutMs ?? 2_000, signal },
      );
      if (res.status !== 401) return res;
      this.tokens.invalidate();
    }
    return res!;
  }
}
