import type { z } from 'zod';
import { MetadataTransportError, type MetadataResponse } from './metadata-client.port.js';
import type { Notice, NoticeSource } from './notice.js';
import { excerpt, type NoticeBatch, type NoticeProblem, type NoticeProblemCode } from './notice-problem.js';

/** What a parser needs to know besides the body: whose node, which path, when, and how strict on time. */
export interface ParseContext {
  nodeId: string;
  source: NoticeSource;
  path: string;
  receivedAt: Date;
  /** How far in the past a deadline may be before it counts as stale (clock skew, poll delay). */
  maxPastMs: number;
}

/** Default tolerance for deadlines slightly in the past: one poll interval plus clock skew. */
export const DEFAULT_MAX_PAST_MS = 5_000;

/** An empty batch, or one holding the given items. */
export function batch(notices: Notice[] = [], problems: NoticeProblem[] = []): NoticeBatch {
  return { notices, problems };
}

/** Concatenates batches. */
export function mergeBatches(batches: readonly NoticeBatch[]): NoticeBatch {
  return { notices: batches.flatMap((b) => b.notices), problems: batches.flatMap((b) => b.problems) };
}

/** Builds a problem bound to the context. */
export function problem(
  ctx: ParseContext,
  code: NoticeProblemCode,
  message: string,
  extra: { status?: number; body?: string } = {},
): NoticeProblem {
  return {
    source: ctx.source,
    nodeId: ctx.nodeId,
    code,
    message: `${ctx.path}: ${message}`,
    path: ctx.path,
    status: extra.status,
    bodyExcerpt: extra.body === undefined ? undefined : excerpt(extra.body),
    at: ctx.receivedAt,
  };
}

/** Parses a JSON body; a parse failure becomes a `malformed_json` problem. */
export function parseJsonBody(
  ctx: ParseContext,
  body: string,
): { ok: true; value: unknown } | { ok: false; problem: NoticeProblem } {
  try {
    return { ok: true, value: JSON.parse(body) as unknown };
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, problem: problem(ctx, 'malformed_json', `body is not JSON (${why})`, { body }) };
  }
}

/** Turns a zod failure into one readable line: `time: expected string; action: required`. */
export function describeZodError(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`).join('; ');
}

/** A `stale` problem when the deadline is too far in the past to be a new event, else undefined. */
export function staleProblem(
  ctx: ParseContext,
  deadline: Date,
  what: string,
  body?: string,
): NoticeProblem | undefined {
  const ageMs = ctx.receivedAt.getTime() - deadline.getTime();
  if (ageMs <= ctx.maxPastMs) return undefined;
  return problem(
    ctx,
    'stale',
    `${what} ${deadline.toISOString()} is ${Math.round(ageMs / 1000)} s in the past; ignored as an old event`,
    { body },
  );
}

/**
 * Classifies a metadata response: `ok` (2xx), `none` (404 where the service uses it for "no event"), or
 * a problem for every other status.
 */
export function classifyStatus(
  ctx: ParseContext,
  res: MetadataResponse,
  service: string,
  opts: { notFoundIsNone: boolean } = { notFoundIsNone: true },
): 'ok' | 'none' | NoticeProblem {
  if (res.status >= 200 && res.status < 300) return 'ok';
  if (res.status === 404 && opts.notFoundIsNone) return 'none';
  const extra = { status: res.status, body: res.body };
  if (res.status === 401 || res.status === 403) {
    return problem(ctx, 'unauthorized', `${res.status} from ${service} (request refused)`, extra);
  }
  if (res.status >= 500) {
    return problem(ctx, 'unavailable', `${res.status} from ${service} (will retry)`, extra);
  }
  return problem(ctx, 'http_status', `unexpected ${res.status} from ${service}`, extra);
}

/** Turns a thrown request error into a `transport` problem; rethrows aborts so loops stop. */
export function transportProblem(ctx: ParseContext, err: unknown, signal?: AbortSignal): NoticeProblem {
  if (signal?.aborted) throw err;
  const message = err instanceof MetadataTransportError || err instanceof Error ? err.message : String(err);
  return problem(ctx, 'transport', `no answer: ${message}`);
}
