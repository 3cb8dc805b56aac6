import { randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeHttpServer } from './fake-http-server.js';

const PREFIX = '/computeMetadata/v1/';

interface Waiter {
  res: ServerResponse;
  timer: NodeJS.Timeout;
}

/** Options of {@link FakeGcpMetadataServer}. */
export interface FakeGcpMetadataServerOptions {
  /** Longest hang when a request gives no `timeout_sec`. Default 60 s. */
  maxHangMs?: number;
}

/**
 * Fake of the GCE metadata server for the keys spotlift reads: `Metadata-Flavor: Google` required on every
 * request (403 without), answered with `Metadata-Flavor: Google` and an `ETag`; `?wait_for_change=true`
 * hangs until the value changes or `timeout_sec` elapses (then answers the current value), and returns at
 * once when `last_etag` differs from the current etag. Values are plain text (`TRUE`/`FALSE`, `NONE`, …).
 */
export class FakeGcpMetadataServer extends FakeHttpServer {
  private readonly values = new Map<string, { value: string; etag: string }>();
  private readonly waiters = new Map<string, Set<Waiter>>();

  constructor(private readonly options: FakeGcpMetadataServerOptions = {}) {
    super();
    this.setValue('instance/preempted', 'FALSE');
    this.setValue('instance/maintenance-event', 'NONE');
    this.setValue('instance/scheduling/preemptible', 'TRUE');
    this.setValue('instance/scheduling/on-host-maintenance', 'TERMINATE');
    this.setValue('instance/name', 'gce-spot-1');
  }

  /** Flips `instance/preempted` (TRUE/FALSE), waking hanging GETs. */
  setPreempted(preempted: boolean): void {
    this.setValue('instance/preempted', preempted ? 'TRUE' : 'FALSE');
  }

  /** Sets `instance/maintenance-event` (`NONE`, `MIGRATE_ON_HOST_MAINTENANCE`, `TERMINATE_ON_HOST_MAINTENANCE`). */
  setMaintenanceEvent(value: string): void {
    this.setValue('instance/maintenance-event', value);
  }

  /** Sets any key (verbatim, so tests can serve wrong content); a new value gets a new etag. */
  setValue(key: string, value: string): void {
    const prev = this.values.get(key);
    if (prev && prev.value === value) return;
    this.values.set(key, { value, etag: randomBytes(8).toString('hex') });
    const waiting = this.waiters.get(key);
    if (!waiting) return;
    this.waiters.delete(key);
    for (const w of waiting) {
      clearTimeout(w.timer);
      this.answer(w.res, key);
    }
  }

  /** Current etag of a key. */
  etagOf(key: string): string | undefined {
    return this.values.get(key)?.etag;
  }

  /** Hanging GETs currently waiting on a key. */
  waitingCount(key = 'instance/preempted'): number {
    return this.waiters.get(key)?.size ?? 0;
  }

  protected override onStop(): void {
    for (const set of this.waiters.values()) for (const w of set) clearTimeout(w.timer);
    this.waiters.clear();
  }

  protected handle(req: IncomingMessage, res: ServerResponse, _body: string, url: URL): void {
    // The metadata server refuses requests that came through a proxy, and any without the flavor header.
    if (req.headers['x-forwarded-for'] !== undefined || req.headers['metadata-flavor'] !== 'Google') {
      res.writeHead(403, { 'Content-Type': 'text/html; charset=UTF-8', 'Metadata-Flavor': 'Google' });
      res.end(
        'Your client does not have permission to get URL from this server. Missing Metadata-Flavor:Google header.\n',
      );
      return;
    }
    if (req.method !== 'GET' || !url.pathname.startsWith(PREFIX)) {
      res.writeHead(req.method !== 'GET' ? 405 : 404, { 'Metadata-Flavor': 'Google' });
      res.end();
      return;
    }
    const key = url.pathname.slice(PREFIX.length);
    const current = this.values.get(key);
    if (!current) {
      res.writeHead(404, { 'Content-Type': 'text/html; charset=UTF-8', 'Metadata-Flavor': 'Google' });
      res.end('<!DOCTYPE html>\n<html><body><h1>404 Not Found</h1></body></html>\n');
      return;
    }
    if (url.searchParams.get('wait_for_change') !== 'true') return this.answer(res, key);
    const lastEtag = url.searchParams.get('last_etag');
    // A change the client has not seen yet: answer at once instead of waiting for the next one.
    if (lastEtag !== null && lastEtag !== current.etag) return this.answer(res, key);
    const timeoutSec = Number(url.searchParams.get('timeout_sec'));
    const hangMs =
      Number.isFinite(timeoutSec) && timeoutSec > 0 ? timeoutSec * 1000 : (this.options.maxHangMs ?? 60_000);
    const set = this.waiters.get(key) ?? new Set<Waiter>();
    this.waiters.set(key, set);
    const waiter: Waiter = {
      res,
      timer: setTimeout(() => {
        set.delete(waiter);
        this.answer(res, key);
      }, hangMs),
    };
    set.add(waiter);
    res.on('close', () => {
      clearTimeout(waiter.timer);
      set.delete(waiter);
    });
  }

  private answer(res: ServerResponse, key: string): void {
    if (res.writableEnded || res.destroyed) return;
    const v = this.values.get(key)!;
    res.writeHead(200, {
      'Content-Type': 'application/text',
      'Metadata-Flavor': 'Google',
      ETag: v.etag,
      Server: 'Metadata Server for VM',
    });
    res.end(v.value);
  }
}
