import type { GuardReport } from '@spotlift/domain';
import { details, table } from './format.js';

/** `spotlift workloads guard <id>`: settings, RPO, freeze cost, why a restore after a node loss waits. */
export function guardDetails(id: string, r: GuardReport): string {
  const s = r.settings;
  const head = details([
    ['workload', id],
    ['every / keep', `${s.intervalSeconds} s / ${s.keep}`],
    ['max freeze', s.maxFreezeMs !== undefined ? `${s.maxFreezeMs} ms` : undefined],
    [
      'RPO',
      r.rpoSeconds !== undefined ? `${r.rpoSeconds.toFixed(1)} s (${r.lastGoodCheckpointId})` : 'no checkpoint yet',
    ],
    [
      'freeze',
      r.overhead.meanFreezeMs !== undefined
        ? `${r.overhead.meanFreezeMs} ms per checkpoint, ${((r.overhead.freezeMsPerHour ?? 0) / 1000).toFixed(1)} s per hour`
        : undefined,
    ],
    ['skipped', r.skipped ? `${r.skipped.reason} (${r.skipped.at})` : undefined],
    ['last failure', r.lastFailure ? `${r.lastFailure.id}: ${r.lastFailure.error ?? '?'}` : undefined],
    ['node loss', r.loss ? `${r.loss.action}: ${r.loss.reason}` : undefined],
  ]);
  if (!r.checkpoints.length) return head;
  const rows = r.checkpoints.map((c) => [
    c.id,
    c.frozenAt ?? '-',
    c.freezeMs !== undefined ? `${c.freezeMs.toFixed(1)} ms` : '-',
    c.storedBytes !== undefined ? `${(c.storedBytes / 2 ** 20).toFixed(1)} MiB` : '-',
  ]);
  return `${head}\n\n${table([['CHECKPOINT', 'FROZEN AT', 'FREEZE', 'STORED'], ...rows])}`;
}
