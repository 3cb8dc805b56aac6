/**
 * The event stream's HTTP client (`GET /events`, Server-Sent Events): the CLI's second way to the API, beside
 * api-client.ts, for `spotlift watch` and anything else that follows events.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { DeliveredEvent } from '@spotlift/domain';

/** Where the stream is and who reads it (the CLI's settings: flags > env > config file). */
export interface StreamSettings {
  url: string;
  token: string;
  ca?: Buffer;
}

export interface FollowOptions {
  /** Filters: node, workload, migration, evacuation (all given must match). */
  filter?: Record<string, string>;
  /** Resume after this stream id (an earlier `watch`'s last id). */
  after?: string;
  /** Stops following (the iterator ends). */
  signal?: AbortSignal;
  /** Told when the stream ended and is reopened (from the last id seen, so nothing is missed). */
  onReconnect?: (error: Error) => void;
}

class StreamRefused extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `GET /events` as an async iterator of events, with the bearer token in its header (never in the URL) and the
 * CA of the CLI (node:http(s), as ApiClient, for `--ca`). A stream that ends or breaks is reopened with
 * Last-Event-ID after a second; a 4xx ends the iteration with its error (a token or filter will not get better).
 */
export async function* followEvents(s: StreamSettings, o: FollowOptions = {}): AsyncGenerator<DeliveredEvent> {
  let last = o.after;
  for (;;) {
    if (o.signal?.aborted) return;
    try {
      const res = await open(s, o.filter ?? {}, last, o.signal);
      let buffer = '';
      for await (const chunk of res) {
        buffer += (chunk as Buffer).toString('utf8');
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const e = parseFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (e) {
            last = e.id;
            yield e;
          }
        }
      }
      o.onReconnect?.(new Error('the stream ended'));
    } catch (error) {
      if (o.signal?.aborted) return;
      if (error instanceof StreamRefused && error.status < 500) throw error;
      o.onReconnect?.(error as Error);
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

function open(
  s: StreamSettings,
  filter: Record<string, string>,
  after: string | undefined,
  signal: AbortSignal | undefined,
): Promise<IncomingMessage> {
  const url = new URL('/events', s.url);
  for (const [k, v] of Object.entries(filter)) url.searchParams.set(k, v);
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(url, {
      headers: {
        authorization: `Bearer ${s.token}`,
        accept: 'text/event-stream',
        ...(after ? { 'last-event-id': after } : {}),
      },
      ...(s.ca ? { ca: s.ca } : {}),
      ...(signal ? { signal } : {}),
    });
    req.on('response', (res) => {
      if (res.statusCode === 200) return resolve(res);
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let message = text.slice(0, 300);
        try {
          message = (JSON.parse(text) as { message?: string }).message ?? message;
        } catch {
          // not JSON: the text itself
        }
        reject(new StreamRefused(res.statusCode ?? 0, `GET /events: HTTP ${res.statusCode}: ${message}`));
      });
    });
    req.on('error', reject);
    req.end();
  });
}

/** One SSE frame -> the event it carries (events only: comments and id-less notices give undefined). */
export function parseFrame(text: string): DeliveredEvent | undefined {
  let id: string | undefined;
  const data: string[] = [];
  for (const line of text.split('\n')) {
    if (line.startsWith('id: ')) id = line.slice(4);
    else if (line.startsWith('data: ')) data.push(line.slice(6));
  }
  if (!id || data.length === 0) return undefined;
  return JSON.parse(data.join('\n')) as DeliveredEvent;
}
