import { runLabScript } from './exec.js';

/** What scripts/lab/bare-migrate.sh prints (times in ms; `criu` holds CRIU's own stats, times in ms). */
export interface BareMigrateResult {
  /** Restore end minus the moment CRIU seized the tree. */
  downtimeMs: number;
  dumpMs: number;
  copyMs: number;
  restoreMs: number;
  restoredPid: number;
  sourcePid: number;
  src: string;
  dst: string;
  dumpStartToRestoreEndMs: number;
  totalMs: number;
  pageServerPort: number;
  imagesDir: string;
  criu: Partial<Record<string, number>>;
}

/** Stop-and-copy with bare CRIU from node SRC to node DST (the benchmark baseline). */
export async function bareMigrate(
  src: string,
  dst: string,
  pid: number,
  opts: { keepImages?: boolean; timeoutMs?: number } = {},
): Promise<BareMigrateResult> {
  const args = [src, dst, String(pid), '--json'];
  if (opts.keepImages) args.push('--keep-images');
  const { stdout } = await runLabScript('bare-migrate.sh', args, opts.timeoutMs ?? 300_000);
  const last = stdout.trim().split('\n').pop() ?? '';
  const result = JSON.parse(last) as BareMigrateResult;
  if (!Number.isInteger(result.restoredPid)) throw new Error(`lab: bare-migrate.sh printed no restored pid: ${stdout}`);
  return result;
}
