import type { MigrationRecord } from '@spotlift/domain';
import type { MigrationContext } from './engine.types.js';
import type { NodeOps } from './node-ops.js';

/** The tail kept of each CRIU log: the error is at the end, and a node's disk must not fill with logs. */
export const KEPT_LOG_BYTES = 256 * 1024;
/** Job log directories older than this are removed whenever another job's logs are kept on that node. */
export const KEPT_LOG_MAX_AGE_DAYS = 7;

/** `<imageRoot>/../logs/<migration id>`: next to the images, outside the directory cleanup removes. */
export function keptLogsDir(imageRoot: string, migrationId: string): string {
  const parent = imageRoot.replace(/\/+[^/]+\/*$/, '') || '/';
  return `${parent.replace(/\/$/, '')}/logs/${migrationId}`;
}

/**
 * A job that failed, rolled back or was cancelled: its errors say "read the full log", and cleanup is about to
 * remove the image directories that hold dump.log and restore.log. The tails of the logs are kept on each
 * node first, and the record (its `error` too) says where. Never throws: cleanup must go on.
 */
export async function keepFailedJobLogs(ops: NodeOps, ctx: MigrationContext, imageRoot: string): Promise<void> {
  const { migration } = ctx;
  // Before 'prepare' no CRIU step of the job ran yet, except preflight's checks, whose errors quote their log.
  if (!migration.phases.some((p) => p.name !== 'preflight')) return;
  const from = `${imageRoot}/${migration.id}`;
  const to = keptLogsDir(imageRoot, migration.id);
  const kept = await Promise.all(
    [ctx.source, ctx.destination].map(async (node) => ({
      nodeId: node.id,
      dir: to,
      files: await ops.keepLogs(node, from, to, KEPT_LOG_BYTES, KEPT_LOG_MAX_AGE_DAYS * 24 * 60),
    })),
  );
  const where = kept.filter((k) => k.files > 0);
  if (where.length === 0) return;
  migration.keptLogs = where;
  const text = `CRIU's logs (last ${KEPT_LOG_BYTES / 1024} KiB of each) kept for ${KEPT_LOG_MAX_AGE_DAYS} days in ${describe(where)}`;
  migration.error = migration.error ? `${migration.error}; ${text}` : text;
}

function describe(where: NonNullable<MigrationRecord['keptLogs']>): string {
  return where.map((k) => `${k.nodeId}:${k.dir}`).join(', ');
}
