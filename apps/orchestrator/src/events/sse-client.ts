import type { DeliveredEvent, EventFilter } from '@spotlift/domain';
import { eventMatches } from '@spotlift/domain';

/** The part of a response an SSE client writes to (an Express/Node ServerResponse in the app). */
export interface SseSink {
  write(chunk: string): boolean;
  readonly writableLength: number;
  destroy(): void;
}

/** Live events held for a client while its replay is still being sent, at most. */
const MAX_HELD = 10_000;

/** One SSE frame: the stream id as `id:` (what `Last-Event-ID` sends back), the type as `event:`. */
export function frame(e: DeliveredEvent): string {
  return `id: ${e.id}\nevent: ${e.type}\ndata: ${JSON.stringify(e)}\n\n`;
}

/**
 * One `GET /events` client: its filter, its replay-then-live order, and its bound. Bytes it leaves unread pile
 * up in this process (the socket's send buffer is full); past `maxBufferedBytes` it is dropped (the connection is
 * destroyed) instead of being buffered without end, and it may reconnect with Last-Event-ID. While its replay
 * runs, live events are held (bounded too) and sent after it, skipping what the replay already sent.
 */
export class SseClient {
  private lastSent = '0-0';
  private held: DeliveredEvent[] | undefined = [];
  dropped: string | undefined;

  constructor(
    private readonly sink: SseSink,
    private readonly filter: EventFilter,
    private readonly maxBufferedBytes: number,
    private readonly compare: (a: string, b: string) => number,
    private readonly onDrop: (reason: string) => void = () => undefined,
  ) {}

  /** The client resumes after this stream id (its Last-Event-ID): nothing at or before it is sent. */
  resumeAfter(id: string): void {
    this.lastSent = id;
  }

  /** A live event from the hub. */
  live(e: DeliveredEvent): void {
    if (this.dropped) return;
    if (this.held) {
      if (this.held.push(e) > MAX_HELD) this.drop('too many live events held during its replay');
      return;
    }
    this.send(e);
  }

  /** A replayed event (oldest first). */
  replayed(e: DeliveredEvent): void {
    this.send(e);
  }

  /** The replay is over: what was held is sent, and live events go out as they come. */
  replayDone(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const e of held) this.send(e);
  }

  /** Whether its unread bytes are over the bound (the replay waits for it to drain before sending more). */
  get backedUp(): boolean {
    return this.sink.writableLength > this.maxBufferedBytes;
  }

  comment(text: string): void {
    if (!this.dropped) this.write(`: ${text}\n\n`);
  }

  /** A named event without an id (it is no position in the stream), e.g. `gap`. */
  notice(type: string, data: object): void {
    if (!this.dropped) this.write(`event: ${type}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  drop(reason: string): void {
    if (this.dropped) return;
    this.dropped = reason;
    this.held = undefined;
    this.sink.destroy();
    this.onDrop(reason);
  }

  private send(e: DeliveredEvent): void {
    if (this.dropped || this.compare(e.id, this.lastSent) <= 0) return;
    this.lastSent = e.id;
    if (eventMatches(e, this.filter)) this.write(frame(e));
  }

  /**
   * Checked before writing: the bytes still unread from earlier writes. A burst may take a reading client over
   * the bound for a moment; a client still over it when the next event comes has stopped reading. So at most
   * the bound plus one burst (a live batch) waits for a client in memory.
   */
  private write(chunk: string): void {
    if (this.backedUp && this.held === undefined) return this.drop(`more than ${this.maxBufferedBytes} bytes unread`);
    this.sink.write(chunk);
  }
}
