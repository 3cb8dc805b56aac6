import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeHttpServer } from './fake-http-server.js';

const TTL_HEADER = 'x-aws-ec2-metadata-token-ttl-seconds';
const TOKEN_HEADER = 'x-aws-ec2-metadata-token';
const MAX_TTL = 21_600;

// Bodies as AEMM (amazon-ec2-metadata-mock v1.13.0, pkg/server) sends them, through Go's http.Error.
const html = (title: string) =>
  `<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"\n\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n <head>\n  <title>${title}</title>\n </head>\n <body>\n  <h1>${title}</h1>\n </body>\n</html>\n`;

/** A scheduled maintenance event as IMDS lists it (dates like `21 Jan 2019 09:00:43 GMT`). */
export interface FakeImdsScheduledEvent {
  Code: string;
  Description: string;
  EventId: string;
  NotBefore: string;
  NotAfter?: string;
  NotBeforeDeadline?: string;
  State: string;
}

/** Options of {@link FakeImdsServer}. */
export interface FakeImdsServerOptions {
  /** IMDSv2 only (`HttpTokens=required`, AEMM `--imdsv2`): GETs without a valid token get 401. Default true. */
  tokensRequired?: boolean;
  instanceId?: string;
}

/**
 * Fake of the EC2 instance metadata service, IMDSv2, as documented and as AEMM behaves: token `PUT` with a
 * TTL of 1..21600 s (400 otherwise, echoed in the response header), 401 for a missing, unknown or expired
 * token, 404 (HTML page) on `spot/instance-action` until a notice is set, and — like AEMM — the notice
 * `time` recomputed as request time + 2 min on every request unless a fixed time is set.
 */
export class FakeImdsServer extends FakeHttpServer {
  private readonly tokens = new Map<string, { ttl: number; createdAt: number }>();
  private spot?: { action: string; time?: string };
  private rebalance?: { noticeTime?: string };
  private scheduled?: FakeImdsScheduledEvent[];

  constructor(private readonly options: FakeImdsServerOptions = {}) {
    super();
  }

  /**
   * Sets the Spot interruption notice. Without `time`, it is recomputed per request (AEMM); a string is
   * served verbatim (use it for past or malformed times), a Date as RFC 3339 whole seconds.
   */
  setSpotInterruption(notice: { action?: string; time?: Date | string } = {}): void {
    const time = notice.time instanceof Date ? rfc3339(notice.time) : notice.time;
    this.spot = { action: notice.action ?? 'terminate', time };
  }

  clearSpotInterruption(): void {
    this.spot = undefined;
  }

  /** Sets the rebalance recommendation; without a time, `noticeTime` is the request time (AEMM). */
  setRebalanceRecommendation(noticeTime?: Date | string): void {
    this.rebalance = { noticeTime: noticeTime instanceof Date ? rfc3339(noticeTime) : noticeTime };
  }

  clearRebalanceRecommendation(): void {
    this.rebalance = undefined;
  }

  /** Sets the scheduled events list (undefined = 404 as AEMM before its trigger). */
  setScheduledEvents(events: FakeImdsScheduledEvent[] | undefined): void {
    this.scheduled = events;
  }

  /** Every issued token becomes invalid at once (as after an IMDS restart). */
  expireTokens(): void {
    this.tokens.clear();
  }

  /** Number of tokens issued so far. */
  get tokensIssued(): number {
    return this.requests.filter((r) => r.method === 'PUT' && r.path === '/latest/api/token').length;
  }

  protected handle(req: IncomingMessage, res: ServerResponse, _body: string, url: URL): void {
    // AEMM strips a trailing slash before routing.
    const path = url.pathname !== '/' ? url.pathname.replace(/\/+$/, '') : url.pathname;
    if (path === '/latest/api/token') return this.issueToken(req, res);
    if (req.method !== 'GET') return this.error(res, 405, '405 - Method Not Allowed');
    if ((this.options.tokensRequired ?? true) && !this.validToken(req))
      return this.error(res, 401, '401 - Unauthorized');
    switch (path) {
      case '/latest/meta-data/spot/instance-action':
        if (!this.spot) return this.error(res, 404, '404 - Not Found');
        return this.json(res, {
          action: this.spot.action,
          time: this.spot.time ?? rfc3339(new Date(Date.now() + 120_000)),
        });
      case '/latest/meta-data/spot/termination-time':
        if (!this.spot || this.spot.action !== 'terminate') return this.error(res, 404, '404 - Not Found');
        return this.text(res, this.spot.time ?? rfc3339(new Date(Date.now() + 120_000)));
      case '/latest/meta-data/events/recommendations/rebalance':
        if (!this.rebalance) return this.error(res, 404, '404 - Not Found');
        return this.json(res, { noticeTime: this.rebalance.noticeTime ?? rfc3339(new Date()) });
      case '/latest/meta-data/events/maintenance/scheduled':
        if (!this.scheduled) return this.error(res, 404, '404 - Not Found');
        return this.json(res, this.scheduled);
      case '/latest/meta-data/instance-id':
        return this.text(res, this.options.instanceId ?? 'i-1234567890abcdef0');
      default:
        return this.error(res, 404, '404 - Not Found');
    }
  }

  private issueToken(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== 'PUT') return this.error(res, 405, '405 - Method Not Allowed');
    // IMDS refuses token requests that went through a proxy.
    if (req.headers['x-forwarded-for'] !== undefined) return this.error(res, 403, '403 - Forbidden');
    const raw = req.headers[TTL_HEADER];
    const ttl = typeof raw === 'string' && /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL) return this.error(res, 400, '400 - Bad Request');
    const token = randomBytes(32).toString('base64');
    this.tokens.set(token, { ttl, createdAt: Date.now() });
    res.writeHead(200, { 'Content-Type': 'text/plain', [TTL_HEADER]: String(ttl) });
    res.end(token);
  }

  private validToken(req: IncomingMessage): boolean {
    const token = req.headers[TOKEN_HEADER];
    if (typeof token !== 'string' || token === '') return false;
    const t = this.tokens.get(token);
    if (!t) return false;
    // AEMM: expired once whole elapsed seconds reach the TTL.
    if (Math.floor((Date.now() - t.createdAt) / 1000) >= t.ttl) {
      this.tokens.delete(token);
      return false;
    }
    return true;
  }

  private json(res: ServerResponse, data: unknown): void {
    // AEMM pretty-prints with tabs (json.MarshalIndent(data, "", "\t")).
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(data, null, '\t'));
  }

  private text(res: ServerResponse, body: string): void {
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(body);
  }

  private error(res: ServerResponse, status: number, title: string): void {
    res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
    res.end(html(title));
  }
}

/** Go's `time.RFC3339` for a UTC time: whole seconds, `Z`. */
function rfc3339(d: Date): string {
  return d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** Formats a date in the IMDS scheduled-event layout `2 Jan 2006 15:04:05 GMT`. */
export function imdsEventDate(d: Date): string {
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCDate()} ${months[d.getUTCMonth()]} ${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} GMT`;
}
