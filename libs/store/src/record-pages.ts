import { BadRequestError } from '@spotlift/domain';

/** The largest page a list answers, and the one it answers when the caller names none. */
export const MAX_PAGE = 1000;
export const DEFAULT_PAGE = 100;

/**
 * What a kind of record is indexed by: `terms` are `field=value` strings (a migration has `state=running`,
 * `node=a`, `node=b`, `workload=w1`), one sorted set each in Redis, kept in step with the record by every
 * save; `created` is the record's creation time (epoch ms), the score lists are ordered and filtered by.
 */
export interface RecordIndex<T> {
  terms(record: T): string[];
  created(record: T): number;
}

/** Where a page starts: after this entry (creation score, then id, in the page's order). */
export interface PageCursor {
  score: number;
  id: string;
}

export interface PageQuery {
  limit: number;
  /** Newest first (`desc`) or oldest first (`asc`). */
  order: 'asc' | 'desc';
  cursor?: PageCursor;
  /** Terms every record of the page has (AND). */
  where?: string[];
  /** Created at or after / at or before (epoch ms). */
  since?: number;
  until?: number;
}

/** One page; `next` is the cursor of the next one, absent at the end. A page may be shorter than `limit`. */
export interface Page<T> {
  items: T[];
  next?: string;
}

export function encodeCursor(c: PageCursor): string {
  return Buffer.from(JSON.stringify([c.score, c.id])).toString('base64url');
}

/** The cursor a `next` stands for, or a 400 for anything a list did not hand out. */
export function decodeCursor(raw: string): PageCursor {
  const bad = () => new BadRequestError(`invalid cursor: pass the 'next' of a previous page as it was given`);
  if (!/^[A-Za-z0-9_-]{1,400}$/.test(raw)) throw bad();
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (
    !Array.isArray(value) ||
    value.length !== 2 ||
    typeof value[0] !== 'number' ||
    !Number.isFinite(value[0]) ||
    typeof value[1] !== 'string' ||
    value[1].length === 0 ||
    value[1].length > 200
  ) {
    throw bad();
  }
  return { score: value[0], id: value[1] };
}

/** Entry `a` comes before entry `b` in a page of `order` (ties on the score: by id, as Redis orders them). */
export function before(a: PageCursor, b: PageCursor, order: 'asc' | 'desc'): boolean {
  const sign = order === 'asc' ? 1 : -1;
  if (a.score !== b.score) return sign * (a.score - b.score) < 0;
  return sign * (a.id < b.id ? -1 : a.id > b.id ? 1 : 0) < 0;
}

/** The same page over records in memory (repositories without an index of their own, unit tests). */
export function pageOf<T extends { id: string }>(records: T[], query: PageQuery, index: RecordIndex<T>): Page<T> {
  const where = query.where ?? [];
  const entries = records
    .map((r) => ({ r, at: { score: index.created(r), id: r.id } }))
    .filter(({ r, at }) => {
      if (query.since !== undefined && at.score < query.since) return false;
      if (query.until !== undefined && at.score > query.until) return false;
      if (query.cursor && !before(query.cursor, at, query.order)) return false;
      const terms = index.terms(r);
      return where.every((t) => terms.includes(t));
    })
    .sort((a, b) => (before(a.at, b.at, query.order) ? -1 : 1));
  const items = entries.slice(0, query.limit);
  const last = items.at(-1);
  return {
    items: items.map((e) => e.r),
    ...(entries.length > query.limit && last ? { next: encodeCursor(last.at) } : {}),
  };
}

/** The creation time of a record with an ISO `createdAt` (0 when it has none). */
export function createdMs(record: { createdAt?: string }): number {
  const t = record.createdAt ? Date.parse(record.createdAt) : NaN;
  return Number.isFinite(t) ? t : 0;
}
