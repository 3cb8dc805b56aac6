import { z } from 'zod';
import { makeDedupKey } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import {
  batch,
  describeZodError,
  DEFAULT_MAX_PAST_MS,
  problem,
  staleProblem,
  type ParseContext,
} from '../parse-context.js';
import { parseRfc3339 } from '../time-formats.js';

/** The two EventBridge detail-types this parser understands. */
export const EVENTBRIDGE_SPOT_ITN = 'EC2 Spot Instance Interruption Warning';
export const EVENTBRIDGE_REBALANCE = 'EC2 Instance Rebalance Recommendation';

/** The Spot warning's documented lead time: termination is about `time` + 2 minutes. */
export const SPOT_ITN_LEAD_MS = 120_000;

const envelopeSchema = z.object({
  id: z.string(),
  'detail-type': z.string(),
  source: z.literal('aws.ec2'),
  time: z.string(),
  detail: z.object({ 'instance-id': z.string().min(1), 'instance-action': z.string().optional() }),
});

/** Options of {@link parseEventBridgeSpotEvent}. */
export interface EventBridgeParseOptions {
  /** Maps an EC2 instance id to our node id; undefined means "not one of ours" (the queue is shared). */
  nodeIdOf: (instanceId: string) => string | undefined;
  /** When the message was received. Default now. */
  receivedAt?: Date;
  /** Rebalance has no deadline: assumed `time` + this. Default 2 minutes. */
  rebalanceLeadMs?: number;
  maxPastMs?: number;
}

/**
 * Parses one EventBridge event as delivered through SQS (the message body). The Spot warning carries no
 * termination time, so the deadline is the event's `time` + 2 minutes. The instance comes from
 * `detail.instance-id`, never from `resources` (the Spot ARN format differs from the usual EC2 one).
 * The dedup key is the same as the IMDS provider's, so the queue and IMDS raise one notice between them.
 *
 * @param json the SQS message body (a string) or an already-decoded object.
 */
export function parseEventBridgeSpotEvent(json: unknown, options: EventBridgeParseOptions): NoticeBatch {
  const ctx: ParseContext = {
    nodeId: '',
    source: 'aws',
    path: 'eventbridge',
    receivedAt: options.receivedAt ?? new Date(),
    maxPastMs: options.maxPastMs ?? DEFAULT_MAX_PAST_MS,
  };
  let value: unknown = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json) as unknown;
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      return batch([], [problem(ctx, 'malformed_json', `message is not JSON (${why})`, { body: json })]);
    }
  }
  const body = typeof json === 'string' ? json : JSON.stringify(json);
  const parsed = envelopeSchema.safeParse(value);
  if (!parsed.success) return batch([], [problem(ctx, 'invalid_payload', describeZodError(parsed.error), { body })]);
  const ev = parsed.data;
  const instanceId = ev.detail['instance-id'];
  const nodeId = options.nodeIdOf(instanceId);
  // Someone else's instance: not a problem, just not ours (several clusters may share a queue).
  if (nodeId === undefined) return batch();
  ctx.nodeId = nodeId;
  const time = parseRfc3339(ev.time);
  if (!time) return batch([], [problem(ctx, 'invalid_payload', `time '${ev.time}' is not an RFC 3339 date`, { body })]);

  if (ev['detail-type'] === EVENTBRIDGE_SPOT_ITN) {
    const action = ev.detail['instance-action'];
    if (action !== 'terminate' && action !== 'stop' && action !== 'hibernate') {
      const msg = `instance-action '${String(action)}' is not one of terminate|stop|hibernate`;
      return batch([], [problem(ctx, 'unknown_action', msg, { body })]);
    }
    const deadline = new Date(time.getTime() + SPOT_ITN_LEAD_MS);
    const stale = staleProblem(ctx, deadline, 'time + 2 min', body);
    if (stale) return batch([], [stale]);
    return batch([
      {
        nodeId,
        source: 'aws',
        kind: 'preemption',
        action,
        deadline,
        deadlineEstimated: true,
        receivedAt: ctx.receivedAt,
        dedupKey: makeDedupKey(nodeId, 'aws', 'preemption'),
        reason: `AWS Spot interruption (EventBridge ${ev.id}): ${action} of ${instanceId}`,
        raw: ev,
      },
    ]);
  }
  if (ev['detail-type'] === EVENTBRIDGE_REBALANCE) {
    return batch([
      {
        nodeId,
        source: 'aws',
        kind: 'rebalance',
        action: 'rebalance-recommendation',
        deadline: new Date(Math.max(time.getTime(), ctx.receivedAt.getTime()) + (options.rebalanceLeadMs ?? 120_000)),
        deadlineEstimated: true,
        receivedAt: ctx.receivedAt,
        dedupKey: makeDedupKey(nodeId, 'aws', 'rebalance'),
        reason: `AWS rebalance recommendation (EventBridge ${ev.id}) for ${instanceId}`,
        raw: ev,
      },
    ]);
  }
  const msg = `detail-type '${ev['detail-type']}' is not handled (only Spot warning and rebalance)`;
  return batch([], [problem(ctx, 'unknown_action', msg, { body })]);
}
