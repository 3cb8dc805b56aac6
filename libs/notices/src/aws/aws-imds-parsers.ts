import { z } from 'zod';
import { makeDedupKey, type Notice, type NoticeKind } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import { batch, describeZodError, parseJsonBody, problem, staleProblem, type ParseContext } from '../parse-context.js';
import { parseAwsEventDate, parseRfc3339 } from '../time-formats.js';

/** IMDS paths read by the AWS provider (as in NTH's `pkg/ec2metadata`). */
export const IMDS_PATHS = {
  token: '/latest/api/token',
  instanceAction: '/latest/meta-data/spot/instance-action',
  /** The older documented path: the termination time alone, as plain text (set only for `terminate`). */
  terminationTime: '/latest/meta-data/spot/termination-time',
  rebalance: '/latest/meta-data/events/recommendations/rebalance',
  maintenance: '/latest/meta-data/events/maintenance/scheduled',
} as const;

/** The documented Spot actions. Hibernate gets a notice but no 2-minute warning. */
export const AWS_SPOT_ACTIONS = ['terminate', 'stop', 'hibernate'] as const;

/**
 * Scheduled-event codes and what they mean for our processes. NTH acts on the first four; a
 * system-maintenance event may degrade the host without a reboot, so it is only `maintenance`.
 */
export const DEFAULT_AWS_MAINTENANCE_CODES: Readonly<Record<string, NoticeKind>> = {
  'instance-stop': 'termination',
  'instance-retirement': 'termination',
  'instance-reboot': 'maintenance',
  'system-reboot': 'maintenance',
  'system-maintenance': 'maintenance',
};

const instanceActionSchema = z.object({ action: z.string(), time: z.string() });
const rebalanceSchema = z.object({ noticeTime: z.string() });
const maintenanceEventSchema = z.object({
  Code: z.string(),
  EventId: z.string().min(1),
  NotBefore: z.string(),
  NotAfter: z.string().optional(),
  State: z.string().optional(),
  Description: z.string().optional(),
});

/** Parses a 200 body of `spot/instance-action`: `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`. */
export function parseInstanceAction(ctx: ParseContext, body: string): NoticeBatch {
  const json = parseJsonBody(ctx, body);
  if (!json.ok) return batch([], [json.problem]);
  const parsed = instanceActionSchema.safeParse(json.value);
  if (!parsed.success) {
    return batch([], [problem(ctx, 'invalid_payload', describeZodError(parsed.error), { body })]);
  }
  const { action, time } = parsed.data;
  if (!(AWS_SPOT_ACTIONS as readonly string[]).includes(action)) {
    const known = AWS_SPOT_ACTIONS.join('|');
    return batch([], [problem(ctx, 'unknown_action', `action '${action}' is not one of ${known}`, { body })]);
  }
  const deadline = parseRfc3339(time);
  if (!deadline) {
    return batch([], [problem(ctx, 'invalid_payload', `time '${time}' is not an RFC 3339 date`, { body })]);
  }
  // EC2 leaves an old `time` in place if the action failed: a past time is not a new notice.
  const stale = staleProblem(ctx, deadline, 'time', body);
  if (stale) return batch([], [stale]);
  const notice: Notice = {
    nodeId: ctx.nodeId,
    source: 'aws',
    kind: 'preemption',
    action,
    deadline,
    deadlineEstimated: false,
    receivedAt: ctx.receivedAt,
    // No time in the key: AEMM recomputes it per request and a revised time is the same event.
    dedupKey: makeDedupKey(ctx.nodeId, 'aws', 'preemption'),
    reason: `AWS Spot interruption: ${action} at ${time}`,
    raw: parsed.data,
  };
  return batch([notice]);
}

/** Problems of an instance-action body that say nothing about whether a notice is there: worth the other path. */
export const MALFORMED_INSTANCE_ACTION: ReadonlySet<string> = new Set(['malformed_json', 'invalid_payload']);

/**
 * Parses a 200 body of `spot/termination-time` (plain text, `2015-01-05T18:02:00Z`), read only when the
 * `spot/instance-action` body was malformed: a broken body must not hide a notice the other documented path
 * still gives. EC2 sets this path only for `terminate`; the notice says in `reason` and `raw.path` which
 * path it came from and why.
 */
export function parseTerminationTime(ctx: ParseContext, body: string, instanceActionProblem: string): NoticeBatch {
  const time = body.trim();
  const deadline = parseRfc3339(time);
  if (!deadline) {
    return batch([], [problem(ctx, 'invalid_payload', `'${time.slice(0, 40)}' is not an RFC 3339 date`, { body })]);
  }
  const stale = staleProblem(ctx, deadline, 'termination time', body);
  if (stale) return batch([], [stale]);
  return batch([
    {
      nodeId: ctx.nodeId,
      source: 'aws',
      kind: 'preemption',
      action: 'terminate',
      deadline,
      deadlineEstimated: false,
      receivedAt: ctx.receivedAt,
      // The same key as an instance-action notice: once that body is readable again it is the same event.
      dedupKey: makeDedupKey(ctx.nodeId, 'aws', 'preemption'),
      reason: `AWS Spot interruption: terminate at ${time} (read from spot/termination-time because spot/instance-action was malformed: ${instanceActionProblem})`,
      raw: { path: IMDS_PATHS.terminationTime, time, instanceActionProblem },
    },
  ]);
}

/**
 * Parses a 200 body of `events/recommendations/rebalance`: `{"noticeTime": "2020-10-27T08:22:00Z"}`.
 * The signal carries no deadline, so it is `receivedAt + leadMs` (estimated).
 */
export function parseRebalance(ctx: ParseContext, body: string, leadMs: number): NoticeBatch {
  const json = parseJsonBody(ctx, body);
  if (!json.ok) return batch([], [json.problem]);
  const parsed = rebalanceSchema.safeParse(json.value);
  if (!parsed.success) {
    return batch([], [problem(ctx, 'invalid_payload', describeZodError(parsed.error), { body })]);
  }
  const noticeTime = parseRfc3339(parsed.data.noticeTime);
  if (!noticeTime) {
    const bad = parsed.data.noticeTime;
    return batch([], [problem(ctx, 'invalid_payload', `noticeTime '${bad}' is not an RFC 3339 date`, { body })]);
  }
  // noticeTime is when the recommendation was emitted, so it is normally in the past: no stale check.
  return batch([
    {
      nodeId: ctx.nodeId,
      source: 'aws',
      kind: 'rebalance',
      action: 'rebalance-recommendation',
      deadline: new Date(ctx.receivedAt.getTime() + leadMs),
      deadlineEstimated: true,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'aws', 'rebalance'),
      reason: `AWS rebalance recommendation emitted at ${parsed.data.noticeTime}`,
      raw: parsed.data,
    },
  ]);
}

/**
 * Parses a 200 body of `events/maintenance/scheduled`: a JSON array of events with dates like
 * `21 Jan 2019 09:00:43 GMT`. Completed and canceled events are skipped (as NTH does); each bad event is
 * reported on its own so it cannot hide a good one.
 */
export function parseMaintenanceEvents(
  ctx: ParseContext,
  body: string,
  codes: Readonly<Record<string, NoticeKind>> = DEFAULT_AWS_MAINTENANCE_CODES,
): NoticeBatch {
  const json = parseJsonBody(ctx, body);
  if (!json.ok) return batch([], [json.problem]);
  if (!Array.isArray(json.value)) {
    return batch([], [problem(ctx, 'invalid_payload', 'expected a JSON array of events', { body })]);
  }
  const out = batch();
  json.value.forEach((item: unknown, index) => {
    const parsed = maintenanceEventSchema.safeParse(item);
    if (!parsed.success) {
      out.problems.push(problem(ctx, 'invalid_payload', `event ${index}: ${describeZodError(parsed.error)}`, { body }));
      return;
    }
    const ev = parsed.data;
    const state = ev.State?.toLowerCase();
    if (state === 'completed' || state === 'canceled' || state === 'cancelled') return;
    const kind = Object.hasOwn(codes, ev.Code) ? codes[ev.Code] : undefined;
    if (!kind) {
      const msg = `event ${ev.EventId}: code '${ev.Code}' is not one of ${Object.keys(codes).join('|')}`;
      out.problems.push(problem(ctx, 'unknown_action', msg, { body }));
      return;
    }
    const notBefore = parseAwsEventDate(ev.NotBefore);
    const notAfter = ev.NotAfter === undefined ? undefined : parseAwsEventDate(ev.NotAfter);
    if (!notBefore || (ev.NotAfter !== undefined && !notAfter)) {
      const msg = `event ${ev.EventId}: NotBefore/NotAfter must look like '21 Jan 2019 09:00:43 GMT'`;
      out.problems.push(problem(ctx, 'invalid_payload', msg, { body }));
      return;
    }
    // The event may start anywhere in [NotBefore, NotAfter]: it is stale only once the window has closed.
    const stale = staleProblem(ctx, notAfter ?? notBefore, `event ${ev.EventId} window end`, body);
    if (stale) {
      out.problems.push(stale);
      return;
    }
    const deadline = notBefore.getTime() < ctx.receivedAt.getTime() ? ctx.receivedAt : notBefore;
    out.notices.push({
      nodeId: ctx.nodeId,
      source: 'aws',
      kind,
      action: ev.Code,
      deadline,
      deadlineEstimated: false,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'aws', kind, ev.EventId),
      reason: `AWS scheduled event ${ev.EventId} (${ev.Code}) not before ${ev.NotBefore}`,
      raw: ev,
    });
  });
  return out;
}
