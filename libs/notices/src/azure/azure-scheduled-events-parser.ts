import { z } from 'zod';
import { makeDedupKey, type NoticeKind } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import { batch, describeZodError, parseJsonBody, problem, staleProblem, type ParseContext } from '../parse-context.js';
import { parseRfc1123 } from '../time-formats.js';

/** The Scheduled Events endpoint; the api-version is mandatory. */
export const AZURE_SCHEDULED_EVENTS_PATH = '/metadata/scheduledevents?api-version=2020-07-01';

/** Every request (GET and POST) must carry `Metadata: true`. */
export const AZURE_METADATA_HEADER = { Metadata: 'true' } as const;

/**
 * Documented EventTypes and what they mean for our processes. Redeploy moves the VM to another host
 * (processes and ephemeral disks are lost), so it counts as termination; Reboot and Freeze keep the VM.
 */
export const AZURE_EVENT_KINDS: Readonly<Record<string, NoticeKind>> = {
  Preempt: 'preemption',
  Terminate: 'termination',
  Redeploy: 'termination',
  Reboot: 'maintenance',
  Freeze: 'maintenance',
};

const documentSchema = z.object({
  DocumentIncarnation: z.number().int().nonnegative(),
  Events: z.array(z.unknown()),
});

const eventSchema = z.object({
  EventId: z.string().min(1),
  EventType: z.string(),
  ResourceType: z.string(),
  Resources: z.array(z.string()),
  EventStatus: z.enum(['Scheduled', 'Started']),
  NotBefore: z.string(),
  Description: z.string().optional(),
  EventSource: z.string().optional(),
  DurationInSeconds: z.number().optional(),
});

/** One Scheduled Event as documented. */
export type AzureScheduledEvent = z.infer<typeof eventSchema>;

/** A parsed document: notices and problems, plus what an acknowledgement needs to know. */
export interface AzureScheduledEventsResult extends NoticeBatch {
  /** Undefined when the document itself was unusable. */
  incarnation?: number;
  /** Well-formed events whose `Resources` list our VM (raising a notice or not): the only ones we may acknowledge. */
  ownEvents: AzureScheduledEvent[];
}

/**
 * Parses a Scheduled Events document. Events for other VMs are skipped (they are sent to every VM in an
 * availability set or placement group); every bad event of ours is reported on its own.
 */
export function parseScheduledEvents(ctx: ParseContext, body: string, vmName: string): AzureScheduledEventsResult {
  const json = parseJsonBody(ctx, body);
  if (!json.ok) return { ...batch([], [json.problem]), ownEvents: [] };
  const doc = documentSchema.safeParse(json.value);
  if (!doc.success) {
    return { ...batch([], [problem(ctx, 'invalid_payload', describeZodError(doc.error), { body })]), ownEvents: [] };
  }
  const out: AzureScheduledEventsResult = { ...batch(), incarnation: doc.data.DocumentIncarnation, ownEvents: [] };
  const me = vmName.toLowerCase();
  doc.data.Events.forEach((item, index) => {
    const parsed = eventSchema.safeParse(item);
    if (!parsed.success) {
      out.problems.push(problem(ctx, 'invalid_payload', `event ${index}: ${describeZodError(parsed.error)}`, { body }));
      return;
    }
    const ev = parsed.data;
    // Azure VM names are case-insensitive.
    if (!ev.Resources.some((r) => r.toLowerCase() === me)) return;
    out.ownEvents.push(ev);
    const kind = Object.hasOwn(AZURE_EVENT_KINDS, ev.EventType) ? AZURE_EVENT_KINDS[ev.EventType] : undefined;
    if (!kind) {
      const known = Object.keys(AZURE_EVENT_KINDS).join('|');
      out.problems.push(
        problem(ctx, 'unknown_action', `event ${ev.EventId}: EventType '${ev.EventType}' is not one of ${known}`, {
          body,
        }),
      );
      return;
    }
    let deadline: Date;
    if (ev.NotBefore === '') {
      // Blank NotBefore is documented only for a started event: it is happening now.
      if (ev.EventStatus !== 'Started') {
        out.problems.push(
          problem(
            ctx,
            'invalid_payload',
            `event ${ev.EventId}: NotBefore is blank but EventStatus is ${ev.EventStatus}`,
            { body },
          ),
        );
        return;
      }
      deadline = ctx.receivedAt;
    } else {
      const notBefore = parseRfc1123(ev.NotBefore);
      if (!notBefore) {
        out.problems.push(
          problem(ctx, 'invalid_payload', `event ${ev.EventId}: NotBefore '${ev.NotBefore}' is not an RFC 1123 date`, {
            body,
          }),
        );
        return;
      }
      const stale = staleProblem(ctx, notBefore, `event ${ev.EventId} NotBefore`, body);
      if (stale) {
        out.problems.push(stale);
        return;
      }
      deadline = notBefore;
    }
    out.notices.push({
      nodeId: ctx.nodeId,
      source: 'azure',
      kind,
      action: ev.EventType,
      deadline,
      deadlineEstimated: false,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'azure', kind, ev.EventId),
      reason: `Azure ${ev.EventType} ${ev.EventId} (${ev.EventStatus}${ev.NotBefore ? `, not before ${ev.NotBefore}` : ''})`,
      raw: { DocumentIncarnation: doc.data.DocumentIncarnation, event: ev },
    });
  });
  return out;
}
