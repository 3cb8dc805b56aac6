import type { EvacuationRecord, MigrationRecord } from '@spotlift/domain';
import type { ApiClient } from './api-client.js';
import { phaseLine } from './format.js';

/**
 * The seam between "where updates come from" and "what people see". Today updates come from polling the
 * record; the event stream (`GET /events`) can be plugged in as another `RecordUpdates` without touching the
 * renderers below: they only ever see successive copies of the record.
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

/** Yields the record every `intervalMs` until it is done (the last copy yielded is the finished one). */
export function pollRecord<T>(
  api: ApiClient,
  path: (id: string) => string,
  done: (t: T) => boolean,
  intervalMs = 250,
): RecordUpdates<T> {
  return async function* (id: string) {
    for (;;) {
      const rec = await api.request<T>('GET', path(id));
      yield rec;
      if (done(rec)) return;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  };
}

export const pollMigration = (api: ApiClient, intervalMs?: number): RecordUpdates<MigrationRecord> =>
  pollRecord<MigrationRecord>(api, (id) => `/migrations/${encodeURIComponent(id)}`, migrationDone, intervalMs);
export const pollEvacuation = (api: ApiClient, intervalMs?: number): RecordUpdates<EvacuationRecord> =>
  pollRecord<EvacuationRecord>(api, (id) => `/evacuations/${encodeURIComponent(id)}`, evacuationDone, intervalMs);

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
