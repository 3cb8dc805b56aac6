import type { MigrationRecord, NodeRecord, PhaseRecord } from '@spotlift/domain';
import type { MigrationContext } from './engine.types.js';
import type { NodeOps } from './node-ops/node-ops.js';

/** The tail kept of each CRIU log: the error is at the end, and a node's disk must not fill with logs. */
export const KEPT_LOG_BYTES = 256 * 1024;
/** Job log directories older than this are removed whenever another job's logs are kept on that node. */
export const KEPT_LOG_MAX_AGE_DAYS = 7;

type KeptLogs = NonNullable<MigrationRecord['keptLogs']>;

/** `<imageRoot>/../logs/<job id>`: next to the images, outside the directory cleanup removes. */
export function keptLogsDir(imageRoot: string, jobId: string): string {
  const parent = imageRoot.replace(/\/+[^/]+\/*$/, '') || '/';
  return `${parent.replace(/\/$/, '')}/logs/${jobId}`;
}

/**
 * A job that failed, rolled back or was cancelled: its errors say "read the full log", and cleanup is about to
 * remove the image directories that hold dump.log and restore.log. The tails of the logs are kept on each
 * node first, and the record (its `error` too) says where. Never throws: cleanup must go on.
 */
export async function keepFailedJobLogs(ops: NodeOps, ctx: MigrationContext, imageRoot: string): Promise<void> {
  const { migration } = ctx;
  const from = `${imageRoot}/${migration.id}`;
  await keepJobLogs(
    ops,
    migration,
    migration,
    [ctx.source, ctx.destination].map((node) => ({ node, dir: from })),
    imageRoot,
  );
}

/**
 * The same for any job (a migration, a checkpoint's take or one of its restores): the `*.log` tails under
 * each node's `dir` go to `keptLogsDir(imageRoot, job.id)` on that node, and `record` (`keptLogs`, the end
 * of `error`) says where. Nothing when only preflight ran. Never throws.
 */
export async function keepJobLogs(
  ops: NodeOps,
  job: { id: string; phases: PhaseRecord[] },
  record: { keptLogs?: KeptLogs; error?: string },
  dirs: Array<{ node: NodeRecord; dir: string }>,
  imageRoot: string,
): Promise<void> {
  // Before 'prepare' no CRIU step of the job ran yet, except preflight's checks, whose errors quote their log.
  if (!job.phases.some((p) => p.name !== 'preflight')) return;
  const to = keptLogsDir(imageRoot, job.id);
  const kept = await Promise.all(
    dirs.map(async ({ node, dir }) => ({
      nodeId: node.id,
      dir: to,
      files: await ops.keepLogs(node, dir, to, KEPT_LOG_BYTES, KEPT_LOG_MAX_AGE_DAYS * 24 * 60),
    })),
  );
  const where = kept.filter((k) => k.files > 0);
  if (where.length === 0) return;
  record.keptLogs = where;
  const text = `CRIU's logs (last ${KEPT_LOG_BYTES / 1024} KiB of each) kept for ${KEPT_LOG_MAX_AGE_DAYS} days in ${describe(where)}`;
  record.error = record.error ? `${record.error}; ${text}` : text;
}

function describe(where: KeptLogs): string {
  return where.map((k) => `${k.nodeId}:${k.dir}`).join(', ');
}
