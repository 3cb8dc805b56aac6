import type { MetadataClient } from '../metadata-client.port.js';
import { IMDS_PATHS } from './aws-imds-parsers.js';

/** Header names of the IMDSv2 session flow. */
export const IMDS_TOKEN_TTL_HEADER = 'X-aws-ec2-metadata-token-ttl-seconds';
export const IMDS_TOKEN_HEADER = 'X-aws-ec2-metadata-token';

/** IMDS accepts a TTL of 1 s to 6 h. */
export const IMDS_MAX_TOKEN_TTL_SECONDS = 21_600;

/** Options of {@link ImdsTokenCache}. Defaults are NTH's. */
export interface ImdsTokenCacheOptions {
  /** Requested token lifetime, 1..21600 s. Default 3600. */
  ttlSeconds?: number;
  /** Fetch a new token when this little lifetime is left. Default 15 s (capped at half the TTL). */
  refreshMarginSeconds?: number;
  timeoutMs?: number;
  now?: () => number;
}

/** A token, or why none could be had. */
export type TokenResult =
  { ok: true; token: string } | { ok: false; status?: number; body?: string; message: string; transport?: unknown };

/**
 * IMDSv2 session token: one `PUT /latest/api/token`, reused until shortly before it expires, dropped
 * when a GET comes back 401. There is deliberately no IMDSv1 fallback (NTH has one): a node that
 * requires tokens answers v1 with 401 anyway, and silently downgrading hides a broken hop limit.
 */
export class ImdsTokenCache {
  private token?: string;
  private refreshAt = 0;
  private inflight?: Promise<TokenResult>;
  private readonly ttlSeconds: number;
  private readonly marginMs: number;
  private readonly now: () => number;

  constructor(
    private readonly client: MetadataClient,
    private readonly options: ImdsTokenCacheOptions = {},
  ) {
    this.ttlSeconds = options.ttlSeconds ?? 3_600;
    if (!Number.isInteger(this.ttlSeconds) || this.ttlSeconds < 1 || this.ttlSeconds > IMDS_MAX_TOKEN_TTL_SECONDS) {
      throw new RangeError(`IMDS token TTL must be an integer in 1..${IMDS_MAX_TOKEN_TTL_SECONDS} s`);
    }
    this.marginMs = (options.refreshMarginSeconds ?? 15) * 1000;
    this.now = options.now ?? Date.now;
  }

  /** A valid token, fetching one when none is cached or the cached one is about to expire. */
  get(signal?: AbortSignal): Promise<TokenResult> {
    if (this.token && this.now() < this.refreshAt) return Promise.resolve({ ok: true, token: this.token });
    // Concurrent GETs in one poll share one PUT.
    this.inflight ??= this.fetch(signal).finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  /** Forgets the cached token (after a 401: IMDS restarted, or the token expired early). */
  invalidate(): void {
    this.token = undefined;
    this.refreshAt = 0;
  }

  private async fetch(signal?: AbortSignal): Promise<TokenResult> {
    const requestedAt = this.now();
    let res;
    try {
      res = await this.client.put(
        IMDS_PATHS.token,
        { [IMDS_TOKEN_TTL_HEADER]: String(this.ttlSeconds) },
        { timeoutMs: this.options.timeoutMs, signal },
      );
    } catch (err) {
      if (signal?.aborted) throw err;
      return {
        ok: false,
        message: `token PUT failed: ${err instanceof Error ? err.message : String(err)}`,
        transport: err,
      };
    }
    if (res.status !== 200) {
      return { ok: false, status: res.status, body: res.body, message: `token PUT answered ${res.status}` };
    }
    const token = res.body.trim();
    if (!token) return { ok: false, status: res.status, body: res.body, message: 'token PUT returned an empty body' };
    // IMDS echoes the TTL it granted; trust it only if it is sane and not longer than what we asked for.
    const echoed = Number(res.headers[IMDS_TOKEN_TTL_HEADER.toLowerCase()]);
    const ttl = Number.isInteger(echoed) && echoed >= 1 && echoed <= this.ttlSeconds ? echoed : this.ttlSeconds;
    const margin = Math.min(this.marginMs, (ttl * 1000) / 2);
    // Count the lifetime from when we asked, not when the answer arrived: never reuse a token IMDS expired.
    this.token = token;
    this.refreshAt = requestedAt + ttl * 1000 - margin;
    return { ok: true, token };
  }
}
