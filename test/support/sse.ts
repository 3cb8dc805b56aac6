import type { DeliveredEvent } from '@spotlift/domain';

/** A `GET /events` reader for tests: frames parsed as the SSE spec says, kept in order, waitable. */
export interface SseReader {
  status: number;
  /** The body of a non-200 answer. */
  refusal?: string;
  events: DeliveredEvent[];
  /** Named events without an id (`gap`) and comment lines (heartbeats), in order. */
  notices: { type: string; data: unknown }[];
  comments: string[];
  /** Resolves when `pred` holds for some received event (checked as they arrive), rejects after `ms`. */
  waitFor(pred: (e: DeliveredEvent) => boolean, ms?: number, what?: string): Promise<DeliveredEvent>;
  waitForComment(ms?: number): Promise<void>;
  waitForNotice(type: string, ms?: number): Promise<void>;
  /** Resolves when the server ended the stream. */
  ended: Promise<void>;
  close(): void;
}

export async function openEvents(
  baseUrl: string,
  token: string | undefined,
  query = '',
  headers: Record<string, string> = {},
): Promise<SseReader> {
  const abort = new AbortController();
  const res = await fetch(`${baseUrl}/events${query}`, {
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    signal: abort.signal,
  });
  const events: DeliveredEvent[] = [];
  const notices: { type: string; data: unknown }[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => waiters.forEach((w) => w());
  const onFrame = (text: string) => {
    let id: string | undefined;
    let type = 'message';
    const data: string[] = [];
    for (const line of text.split('\n')) {
      if (line.startsWith(':')) comments.push(line.slice(1).trim());
      else if (line.startsWith('id: ')) id = line.slice(4);
      else if (line.startsWith('event: ')) type = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length === 0) return;
    const parsed = JSON.parse(data.join('\n')) as DeliveredEvent;
    if (id) {
      if (parsed.id !== id || parsed.type !== type) throw new Error(`frame id/type mismatch: ${text}`);
      events.push(parsed);
    } else notices.push({ type, data: parsed });
  };
  // A refusal's body is read now, so its connection is not left open.
  const refusal = res.ok ? undefined : await res.text().catch(() => '');
  const ended = (async () => {
    if (!res.ok || !res.body) return;
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of res.body) {
        buffer += decoder.decode(chunk as Uint8Array, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          onFrame(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        wake();
      }
    } catch {
      // aborted by close(), or the server cut it
    } finally {
      wake();
    }
  })();
  const waitUntil = <T>(check: () => T | undefined, ms: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const found = check();
      if (found !== undefined) return resolve(found);
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(
          new Error(
            `no ${what} within ${ms} ms; got ${events.length} events: ${events
              .slice(-5)
              .map((e) => e.type)
              .join(', ')}...`,
          ),
        );
      }, ms);
      const w = () => {
        const hit = check();
        if (hit === undefined) return;
        clearTimeout(timer);
        waiters.delete(w);
        resolve(hit);
      };
      waiters.add(w);
    });
  return {
    status: res.status,
    ...(refusal !== undefined ? { refusal } : {}),
    events,
    notices,
    comments,
    waitFor: (pred, ms = 60_000, what = 'matching event') => waitUntil(() => events.find(pred), ms, what),
    waitForNotice: (type, ms = 5_000) =>
      waitUntil(() => (notices.some((n) => n.type === type) ? true : undefined), ms, `${type} notice`).then(
        () => undefined,
      ),
    waitForComment: (ms = 5_000) =>
      waitUntil(() => (comments.length > 0 ? true : undefined), ms, 'comment').then(() => undefined),
    ended,
    close: () => abort.abort(),
  };
}
