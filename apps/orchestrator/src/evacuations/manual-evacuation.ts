import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { BadRequestError } from '@spotlift/domain';
import { parseWebhookNotice, WEBHOOK_MAX_LEAD_SECONDS, type Notice } from '@spotlift/notices';

/** `POST /evacuations`: an operator empties a node by hand (e.g. before maintenance), with a deadline. */
export const ManualEvacuationBody = z
  .strictObject({
    node: z.string().trim().min(1).max(253),
    deadline: z.string().max(64).optional(),
    secondsUntil: z.number().finite().min(1).max(WEBHOOK_MAX_LEAD_SECONDS).optional(),
    reason: z.string().max(1_000).optional(),
  })
  .refine((b) => (b.deadline === undefined) !== (b.secondsUntil === undefined), {
    message: 'give exactly one of deadline or secondsUntil',
    path: ['deadline'],
  });
export type ManualEvacuationBody = z.infer<typeof ManualEvacuationBody>;

/**
 * The request as a termination notice, so that it is planned, recorded and joined exactly like a cloud's. It goes
 * through the webhook parser (the same deadline rules: not past, at most 60 days ahead) with a fresh event id:
 * every request is its own event, never a duplicate of an earlier one (a person asked for it now).
 */
export function manualNotice(body: ManualEvacuationBody, receivedAt: Date): Notice {
  const parsed = parseWebhookNotice(
    {
      nodeId: body.node,
      kind: 'termination',
      ...(body.deadline !== undefined ? { deadline: body.deadline } : { secondsUntil: body.secondsUntil }),
      source: 'webhook',
      action: 'manual',
      reason: body.reason ? `manual evacuation: ${body.reason}` : 'manual evacuation (POST /evacuations)',
      eventId: `manual-${randomBytes(6).toString('hex')}`,
    },
    { receivedAt, maxPastMs: 0 },
  );
  if (!parsed.ok) throw new BadRequestError(`invalid evacuation: ${parsed.problem.message}`);
  return parsed.notice;
}
