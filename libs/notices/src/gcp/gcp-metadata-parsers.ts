import { makeDedupKey, type NoticeKind } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import { batch, problem, type ParseContext } from '../parse-context.js';

/** Metadata keys under `/computeMetadata/v1/` that the GCP provider watches. */
export const GCP_METADATA_PREFIX = '/computeMetadata/v1/';
export const GCP_KEYS = { preempted: 'instance/preempted', maintenanceEvent: 'instance/maintenance-event' } as const;

/** Every request must carry this header, and a genuine server answers with it too. */
export const GCP_FLAVOR_HEADER = 'Metadata-Flavor';
export const GCP_FLAVOR = 'Google';

/** Documented `instance/maintenance-event` values and their meaning for our processes (`NONE` = nothing). */
export const GCP_MAINTENANCE_VALUES: Readonly<Record<string, NoticeKind | undefined>> = {
  NONE: undefined,
  MIGRATE_ON_HOST_MAINTENANCE: 'maintenance',
  TERMINATE_ON_HOST_MAINTENANCE: 'termination',
};

/**
 * Parses `instance/preempted`: exactly `TRUE` or `FALSE` (plain text). The body has no time: Spot VMs get
 * ACPI G2 at once and G3 30 s later by default (120 s with `preemptionNoticeDuration`), so the deadline is
 * `receivedAt + leadMs`.
 */
export function parsePreempted(ctx: ParseContext, body: string, leadMs: number): NoticeBatch {
  if (body === 'FALSE') return batch();
  if (body !== 'TRUE') {
    return batch(
      [],
      [problem(ctx, 'invalid_payload', `expected TRUE or FALSE, got ${JSON.stringify(body.slice(0, 40))}`, { body })],
    );
  }
  return batch([
    {
      nodeId: ctx.nodeId,
      source: 'gcp',
      kind: 'preemption',
      action: 'preempted',
      deadline: new Date(ctx.receivedAt.getTime() + leadMs),
      deadlineEstimated: true,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'gcp', 'preemption'),
      reason: `GCP instance/preempted is TRUE (assumed ${Math.round(leadMs / 1000)} s to power-off)`,
      raw: body,
    },
  ]);
}

/**
 * Parses `instance/maintenance-event`: `NONE`, `MIGRATE_ON_HOST_MAINTENANCE` or
 * `TERMINATE_ON_HOST_MAINTENANCE`. GCP gives about 60 s of notice before host maintenance; the deadline is
 * `receivedAt + leadMs`. The value returns to `NONE` when maintenance ends.
 */
export function parseMaintenanceEvent(ctx: ParseContext, body: string, leadMs: number): NoticeBatch {
  // hasOwn, not `in`: a body of "toString" must not pass as a known value.
  if (!Object.hasOwn(GCP_MAINTENANCE_VALUES, body)) {
    const known = Object.keys(GCP_MAINTENANCE_VALUES).join('|');
    return batch(
      [],
      [problem(ctx, 'unknown_action', `value ${JSON.stringify(body.slice(0, 60))} is not one of ${known}`, { body })],
    );
  }
  const kind = GCP_MAINTENANCE_VALUES[body];
  if (!kind) return batch();
  return batch([
    {
      nodeId: ctx.nodeId,
      source: 'gcp',
      kind,
      action: body,
      deadline: new Date(ctx.receivedAt.getTime() + leadMs),
      deadlineEstimated: true,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'gcp', kind),
      reason: `GCP instance/maintenance-event is ${body}`,
      raw: body,
    },
  ]);
}
