import { compareCriuVersions } from '@spotlift/criu';
import type { NodeProbe, NodeRecord } from '@spotlift/domain';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps, TreeInfo } from '../node-ops/node-ops.js';
import { identityMismatch } from '../process-inspection.js';

/**
 * The checks of the preflight phase, each answering with a reason a person can act on. None of them
 * touches the workload: the only things written are the cpuinfo images in the migration's own directory.
 */

const fail = (msg: string) => new MigrationStepError('preflight', msg, true);

/** Node states that must not receive a workload: it would have to move again, or could not start there. */
const UNFIT_DESTINATION = new Set(['terminating', 'gone', 'draining', 'unreachable']);

export function checkDestinationState(destination: NodeRecord): void {
  if (UNFIT_DESTINATION.has(destination.state)) {
    throw fail(`destination ${destination.id} is ${destination.state}; pick a ready node`);
  }
}

/**
 * CRIU on the destination must not be older than the source's: images written by a newer CRIU may carry
 * entries an older one cannot read. Decided from the nodes' probes; an unprobed version is refused
 * rather than guessed.
 */
export function checkCriuVersions(source: NodeRecord, destination: NodeRecord): void {
  const src = source.probe?.criuVersion;
  const dst = destination.probe?.criuVersion;
  if (!src || !dst) {
    const missing = !src ? source.id : destination.id;
    throw fail(`the CRIU version of ${missing} is unknown (probe it again: POST /nodes/${missing}/probe)`);
  }
  let order: number;
  try {
    order = compareCriuVersions(dst, src);
  } catch (error) {
    throw fail(
      `cannot compare CRIU versions ${src} (${source.id}) and ${dst} (${destination.id}): ${(error as Error).message}`,
    );
  }
  if (order < 0) {
    throw fail(
      `CRIU ${dst} on ${destination.id} is older than CRIU ${src} on ${source.id}; an older CRIU may not read newer images: upgrade ${destination.id}`,
    );
  }
}

/**
 * The destination's stored probe when it passed `criu check` at most `maxAgeMs` ago: its verdict then stands
 * for a new `criu check`, the slowest part of preflight (~0.37 s here, inside every evacuation's
 * notice-to-freeze time). CRIU on a node does not break between two probes a minute apart; if it did, the
 * restore fails and rolls back like any other restore failure.
 */
export function recentCriuVerdict(destination: NodeRecord, now: Date, maxAgeMs: number): NodeProbe | undefined {
  const probe = destination.probe;
  if (!probe?.criuOk || maxAgeMs <= 0) return undefined;
  const age = now.getTime() - Date.parse(probe.probedAt);
  return age >= 0 && age <= maxAgeMs ? probe : undefined;
}

/**
 * The workload's tree as it runs now on the source; one that exited fails preflight (there is nothing to move),
 * and so does another process that got its pid since (a different start time): freezing that one would move a
 * stranger's process.
 */
export async function runningTree(ops: NodeOps, ctx: MigrationContext): Promise<TreeInfo> {
  const { workload, source } = ctx;
  const tree = await ops.inspectTree(source, workload.pid);
  if (!tree) throw fail(`workload '${workload.name}' (pid ${workload.pid}) no longer runs on ${source.id}`);
  if (workload.identity && !tree.root) {
    throw fail(`could not read which process pid ${workload.pid} is on ${source.id} (it may have just exited)`);
  }
  const other = identityMismatch(workload, tree.root?.identity);
  if (other) throw fail(`workload '${workload.name}' no longer runs: ${other}`);
  return tree;
}

/**
 * `criu check` passes on the destination (or a recent probe says so, see {@link recentCriuVerdict}), and it
 * has the memory and the disk the workload needs. Memory and disk are always read now. Returns what stood
 * for `criu check`, for the phase's detail.
 */
export async function checkDestinationResources(
  ops: NodeOps,
  ctx: MigrationContext,
  tree: TreeInfo,
  config: EngineConfig,
  now: Date,
): Promise<string> {
  const { destination } = ctx;
  const reused = recentCriuVerdict(destination, now, config.probeReuseMs ?? 0);
  const check = await ops.memoryAndDisk(destination, config.imageRoot, { criuCheck: !reused });
  const out = check.stdout + check.stderr;
  if (!reused && !/Looks good/.test(out)) {
    throw fail(`CRIU does not work on ${destination.id}: ${(check.stderr || check.stdout).trim().slice(0, 300)}`);
  }
  const needed = tree.rssBytes * (1 + config.memoryHeadroom);
  const mib = (b: number) => Math.round(b / 2 ** 20);
  const availableKb = Number(/MEM_AVAILABLE_KB (\d+)/.exec(check.stdout)?.[1] ?? '0');
  if (availableKb * 1024 < needed) {
    throw fail(
      `${destination.id} has ${Math.round(availableKb / 1024)} MiB available, the workload needs ${mib(needed)} MiB`,
    );
  }
  const diskText = /DISK_AVAIL_BYTES (\d+)/.exec(check.stdout)?.[1];
  if (diskText === undefined) {
    throw fail(`could not read the free disk space under ${config.imageRoot} on ${destination.id}`);
  }
  // The images are about the size of the tree's resident memory (every private page is written once).
  if (Number(diskText) < needed) {
    throw fail(
      `${destination.id} has ${mib(Number(diskText))} MiB free under ${config.imageRoot}, the images need about ${mib(needed)} MiB`,
    );
  }
  return reused
    ? `criu check: the probe of ${reused.probedAt} (${now.getTime() - Date.parse(reused.probedAt)} ms old) reused`
    : 'criu check: ran';
}

/**
 * CPU compatibility: the source describes its CPU (`criu cpuinfo dump`), the destination compares it with
 * its own (`criu cpuinfo check --cpu-cap=cpu`). A restore on a CPU lacking features the tree uses could
 * die later with SIGILL, so a mismatch fails here, before any freeze.
 */
export async function checkCpuCompatible(ops: NodeOps, ctx: MigrationContext, migrationDir: string): Promise<void> {
  const { source, destination } = ctx;
  const srcDir = `${migrationDir}/cpuinfo-src`;
  const dstDir = `${migrationDir}/cpuinfo-dst`;
  // Two round trips (dump and read back; write and check): this is part of every notice-to-freeze time.
  const dumped = await ops.cpuinfoDumpAndRead(source, srcDir);
  if (dumped.code !== 0) {
    const log = await ops.tail(source, `${srcDir}/cpuinfo-dump.log`, 100);
    throw fail(criu.explainFailure('cpuinfo dump', source.id, log || dumped.stderr, dumped.code));
  }
  const image = dumped.stdout.trim();
  if (!image || !/^[A-Za-z0-9+/=\s]+$/.test(image))
    throw fail(`criu cpuinfo dump on ${source.id} wrote no cpuinfo.img`);
  const checked = await ops.cpuinfoWriteAndCheck(destination, dstDir, image);
  if (checked.code !== 0) {
    const log = await ops.tail(destination, `${dstDir}/cpuinfo-check.log`, 100);
    throw fail(
      `the CPU of ${destination.id} is not compatible with ${source.id}'s: ` +
        criu.explainFailure('cpuinfo check', destination.id, log || checked.stderr, checked.code),
    );
  }
}
