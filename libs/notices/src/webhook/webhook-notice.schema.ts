import { z } from 'zod';
import { makeDedupKey, NOTICE_KINDS, NOTICE_SOURCES, type Notice } from '../notice.js';
import type { NoticeProblem } from '../notice-problem.js';
import { DEFAULT_MAX_PAST_MS, describeZodError, problem, staleProblem, type ParseContext } from '../parse-context.js';
import { parseRfc3339 } from '../time-formats.js';

/** Longest lead a pushed notice may claim (AWS scheduled events can be weeks out; beyond that is a typo). */
export const WEBHOOK_MAX_LEAD_SECONDS = 60 * 60 * 24 * 60;

/**
 * Body of `POST /notices`. Exactly one of `deadline` (RFC 3339) or `secondsUntil`. `source` defaults to
 * `webhook`; a node agent that relays a cloud notice passes the cloud and the event's own `eventId`, so the
 * pushed notice and one polled over SSH share a dedup key. Unknown fields are refused, not ignored.
 */
export const webhookNoticeSchema = z
  .strictObject({
    nodeId: z.string().trim().min(1).max(253),
    kind: z.enum(NOTICE_KINDS),
    deadline: z.string().optional(),
    secondsUntil: z.number().finite().min(0).max(WEBHOOK_MAX_LEAD_SECONDS).optional(),
    source: z.enum(NOTICE_SOURCES).optional(),
    reason: z.string().max(1_000).optional(),
    action: z.string().min(1).max(100).optional(),
    eventId: z.string().min(1).max(200).optional(),
  })
  .refine((b) => (b.deadline === undefined) !== (b.secondsUntil === undefined), {
    message: 'give exactly one of deadline or secondsUntil',
    path: ['deadline'],
  });

/** A validated `POST /notices` body. */
export type WebhookNoticeBody = z.infer<typeof webhookNoticeSchema>;

/** Result of {@link parseWebhookNotice}: a notice, or the reason (to answer 400 with). */
export type WebhookParseResult = { ok: true; notice: Notice } | { ok: false; problem: NoticeProblem };

/**
 * Validates a `POST /notices` body (already JSON-decoded by the HTTP layer) and turns it into a notice.
 * A deadline in the past or more than {@link WEBHOOK_MAX_LEAD_SECONDS} ahead is refused.
 */
export function parseWebhookNotice(
  body: unknown,
  options: { receivedAt?: Date; maxPastMs?: number } = {},
): WebhookParseResult {
  const receivedAt = options.receivedAt ?? new Date();
  const ctx: ParseContext = {
    nodeId: '',
    source: 'webhook',
    path: 'POST /notices',
    receivedAt,
    maxPastMs: options.maxPastMs ?? DEFAULT_MAX_PAST_MS,
  };
  const raw = safeStringify(body);
  const parsed = webhookNoticeSchema.safeParse(body);
  if (!parsed.success)
    return { ok: false, problem: problem(ctx, 'invalid_payload', describeZodError(parsed.error), { body: raw }) };
  const b = parsed.data;
  ctx.nodeId = b.nodeId;
  let deadline: Date;
  if (b.deadline !== undefined) {
    const d = parseRfc3339(b.deadline);
    if (!d)
      return {
        ok: false,
        problem: problem(ctx, 'invalid_payload', `deadline '${b.deadline}' is not an RFC 3339 date`, { body: raw }),
      };
    if (d.getTime() - receivedAt.getTime() > WEBHOOK_MAX_LEAD_SECONDS * 1000) {
      return {
        ok: false,
        problem: problem(ctx, 'invalid_payload', `deadline '${b.deadline}' is more than 60 days ahead`, { body: raw }),
      };
    }
    deadline = d;
  } else {
    deadline = new Date(receivedAt.getTime() + b.secondsUntil! * 1000);
  }
  const stale = staleProblem(ctx, deadline, 'deadline', raw);
  if (stale) return { ok: false, problem: stale };
  const source = b.source ?? 'webhook';
  return {
    ok: true,
    notice: {
      nodeId: b.nodeId,
      source,
      kind: b.kind,
      action: b.action,
      deadline,
      deadlineEstimated: false,
      receivedAt,
      dedupKey: makeDedupKey(b.nodeId, source, b.kind, b.eventId),
      reason: b.reason ?? `pushed ${b.kind} notice${source === 'webhook' ? '' : ` (${source})`}`,
      raw: b,
    },
  };
}

function safeStringify(body: unknown): string {
  try {
    return JSON.stringify(body) ?? String(body);
  } catch {
    return String(body);
  }
}
