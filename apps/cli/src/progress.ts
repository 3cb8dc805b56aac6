import type { EvacuationRecord, MigrationRecord } from '@spotlift/domain';
import type { ApiClient } from './api-client.js';
import { phaseLine } from './format.js';

/**
 * The seam between "where updates come from" and "what people see": the renderers below only ever see
 * successive copies of the record, read again when the event stream (`GET /events`) says it changed
 * (`followRecord`); tests plug in their own `RecordUpdates`.
 */
export type RecordUpdates<T> = (id: string) => AsyncIterable<T>;

const MIGRATION_DONE = new Set(['completed', 'rolled_back', 'failed', 'cancelled']);
const EVACUATION_DONE = new Set(['completed', 'partial', 'failed']);

export function migrationDone(m: Pick<MigrationRecord, 'state'>): boolean {
  return MIGRATION_DONE.has(m.state);
}
export function evacuationDone(e: Pick<EvacuationRecord, 'state'>): boolean {
  return EVACUATION_DONE.has(e.state);
}

/** Events about one record from the event stream (filtered by the server); it ends or throws when the stream does. */
export type EventFeed = (filter: Record<string, string>, signal: AbortSignal) => AsyncIterable<unknown>;

/**
 * Reads the record again each time the event stream says something about it, and at least every `safetyMs`
 * even without an event (one missed, or the record finishing between the first read and the stream's start,
 * cannot stall the command). A stream that ends or is refused (an orchestrator without `GET /events`) turns it
 * into polling every `pollMs`.
 */
export function followRecord<T>(
  api: ApiClient,
  path: (id: string) => string,
  done: (t: T) => boolean,
  feed: EventFeed,
  key: 'migration' | 'evacuation',
  timing: { safetyMs?: number; pollMs?: number } = {},
): RecordUpdates<T> {
  const { safetyMs = 5_000, pollMs = 250 } = timing;
  return async function* (id: string) {
    const stop = new AbortController();
    const events = feed({ [key]: id }, stop.signal)[Symbol.asyncIterator]();
    const nextEvent = (): Promise<'event' | 'ended'> =>
      events.next().then(
        (r) => (r.done ? 'ended' : 'event'),
        () => 'ended',
      );
    // subscribed before the first read, so an event between the two is not lost
    let pending: Promise<'event' | 'ended'> | undefined = nextEvent();
    try {
      for (;;) {
        const rec = await api.request<T>('GET', path(id));
        yield rec;
        if (done(rec)) return;
        let timer: NodeJS.Timeout | undefined;
        const tick = new Promise<'tick'>((r) => (timer = setTimeout(() => r('tick'), pending ? safetyMs : pollMs)));
        const woke = await Promise.race(pending ? [pending, tick] : [tick]);
        clearTimeout(timer);
        if (woke === 'event') pending = nextEvent();
        else if (woke === 'ended') pending = undefined;
      }
    } finally {
      stop.abort();
    }
  };
}

interface Out {
  out: (line: string) => void;
  live?: (line: string) => void;
}

/**
 * Prints a migration as it goes: each phase when it ends, pre-copy rounds and declared-file rounds as they are
 * recorded, post-copy's last page; on a terminal, the phase under way as one live line with its elapsed time.
 */
export class MigrationProgress {
  private phases = 0;
  private rounds = 0;
  private fileRounds = 0;
  private lazyDone = false;
  private liveShown = false;

  constructor(private readonly io: Out) {}

  update(m: MigrationRecord, now: Date = new Date()): void {
    const closed = m.phases.filter((p) => p.ok !== undefined);
    for (const p of closed.slice(this.phases)) this.line(phaseLine(p));
    this.phases = closed.length;
    for (const r of (m.rounds ?? []).slice(this.rounds))
      this.line(
        `    round ${r.round}: ${r.pagesWritten} pages, ${(r.bandwidthBytesPerSec / 2 ** 20).toFixed(1)} MiB/s, ${r.durationMs.toFixed(0)} ms`,
      );
    this.rounds = m.rounds?.length ?? 0;
    const files = m.files?.rounds ?? [];
    for (const [i, r] of files.slice(this.fileRounds).entries())
      this.line(`    files round ${this.fileRounds + i + 1}: ${r.sent} entries, ${r.bytes} B`);
    this.fileRounds = files.length;
    if (!this.lazyDone && m.postCopy?.allPagesAt) {
      this.lazyDone = true;
      this.line(`    post-copy: all ${m.postCopy.lazyPages ?? 0} lazy pages in`);
    }
    const open = m.phases.find((p) => p.ok === undefined);
    if (this.io.live && open && !migrationDone(m)) {
      const s = (now.getTime() - Date.parse(open.startedAt)) / 1000;
      this.io.live(`  … ${open.name.padEnd(10)} ${s.toFixed(1).padStart(8)} s`);
      this.liveShown = true;
    }
  }

  /** Ends the live line so that what follows starts on a fresh one. */
  end(): void {
    if (this.liveShown) this.io.live?.('');
    this.liveShown = false;
  }

  private line(s: string): void {
    if (this.liveShown) this.io.live?.('');
    this.liveShown = false;
    this.io.out(s);
  }
}

/** Prints an evacuation's jobs as their state changes, and its outcome. */
export class EvacuationProgress {
  private readonly seen = new Map<string, string>();

  constructor(private readonly io: Out) {}

  update(e: EvacuationRecord): void {
    for (const j of e.jobs) {
      const key = `${j.state}|${j.migrationId ?? ''}`;
      if (this.seen.get(j.workloadId) === key) continue;
      this.seen.set(j.workloadId, key);
      this.io.out(
        `  ${j.workloadId}: ${j.state}${j.destinationNodeId ? ` -> ${j.destinationNodeId}` : ''}${j.migrationId ? ` (${j.migrationId})` : ''}${j.downtimeMs !== undefined ? `, downtime ${j.downtimeMs.toFixed(1)} ms` : ''}${j.missReason ? `: ${j.missReason}` : ''}`,
      );
    }
  }
}
