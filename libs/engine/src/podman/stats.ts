/**
 * Podman's `--print-stats` output of `container checkpoint` and `container restore`: Podman's and the
 * runtime's durations, and CRIU's own statistics (the same numbers the process path reads from CRIU's
 * stats-dump / stats-restore images, under the same names). Durations are microseconds as printed.
 * Podman omits a CRIU counter that is zero (`omitempty` in libpod's CRIUCheckpointRestoreStatistics), so an
 * absent counter reads as 0; a present one must be a non-negative integer.
 */
import { PodmanOutputError } from './errors.js';

export interface PodmanCheckpointCriuStats {
  freezingTimeUs: number;
  /** From the freeze to the end of the dump: the container's stop, on the source's side. */
  frozenTimeUs: number;
  memdumpTimeUs: number;
  memwriteTimeUs: number;
  pagesScanned: number;
  pagesSkippedParent: number;
  pagesWritten: number;
}

export interface PodmanRestoreCriuStats {
  forkingTimeUs: number;
  restoreTimeUs: number;
  pagesCompared: number;
  pagesSkippedCow: number;
  pagesRestored: number;
}

export interface PodmanContainerStats<C> {
  id: string;
  /** What the runtime (runc) took, CRIU included. */
  runtimeUs: number;
  criu: C;
}

export interface PodmanCheckpointStats {
  /** The whole `podman container checkpoint`, export archive included. */
  podmanUs: number;
  containers: PodmanContainerStats<PodmanCheckpointCriuStats>[];
}

export interface PodmanRestoreStats {
  /** The whole `podman container restore`, import (unpacking the archive) included. */
  podmanUs: number;
  containers: PodmanContainerStats<PodmanRestoreCriuStats>[];
}

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(what: string, message: string, meta: Record<string, unknown> = {}): never {
  throw new PodmanOutputError(`podman ${what} --print-stats: ${message}`, meta);
}

function count(o: Json, key: string, what: string, required: boolean): number {
  const v = o[key];
  if (v === undefined && !required) return 0;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    bad(what, `'${key}' is ${v === undefined ? 'missing' : `not a non-negative integer: ${JSON.stringify(v)}`}`, {
      key,
    });
  }
  return v;
}

function parseJson(what: string, stdout: string): Json {
  let v: unknown;
  try {
    // Podman prints only the JSON with --print-stats; tolerate surrounding whitespace, nothing else.
    v = JSON.parse(stdout);
  } catch (err) {
    bad(what, `output is not JSON (${err instanceof Error ? err.message : String(err)}): ${stdout.slice(0, 120)}`);
  }
  if (!isObj(v)) bad(what, 'expected a JSON object');
  return v;
}

function containers<C>(what: string, top: Json, runtimeKey: string, criu: (o: Json) => C): PodmanContainerStats<C>[] {
  const list = top.container_statistics;
  if (!Array.isArray(list) || list.length === 0) bad(what, "'container_statistics' is missing or empty");
  return list.map((c: unknown) => {
    if (!isObj(c)) bad(what, 'a container_statistics entry is not an object');
    const id = typeof c.Id === 'string' ? c.Id : '';
    if (!/^[0-9a-f]{64}$/.test(id)) bad(what, `a container's Id is not a 64-hex id: ${JSON.stringify(c.Id)}`);
    // No criu_statistics at all: CRIU wrote none (an old CRIU, or the runtime did not ask): every counter 0.
    const stats = c.criu_statistics === undefined || c.criu_statistics === null ? {} : c.criu_statistics;
    if (!isObj(stats)) bad(what, 'criu_statistics is not an object', { id });
    return { id, runtimeUs: count(c, runtimeKey, what, true), criu: criu(stats) };
  });
}

export function parsePodmanCheckpointStats(stdout: string): PodmanCheckpointStats {
  const what = 'container checkpoint';
  const top = parseJson(what, stdout);
  return {
    podmanUs: count(top, 'podman_checkpoint_duration', what, true),
    containers: containers(what, top, 'runtime_checkpoint_duration', (s) => ({
      freezingTimeUs: count(s, 'freezing_time', what, false),
      frozenTimeUs: count(s, 'frozen_time', what, false),
      memdumpTimeUs: count(s, 'memdump_time', what, false),
      memwriteTimeUs: count(s, 'memwrite_time', what, false),
      pagesScanned: count(s, 'pages_scanned', what, false),
      pagesSkippedParent: count(s, 'pages_skipped_parent', what, false),
      pagesWritten: count(s, 'pages_written', what, false),
    })),
  };
}

export function parsePodmanRestoreStats(stdout: string): PodmanRestoreStats {
  const what = 'container restore';
  const top = parseJson(what, stdout);
  return {
    podmanUs: count(top, 'podman_restore_duration', what, true),
    containers: containers(what, top, 'runtime_restore_duration', (s) => ({
      forkingTimeUs: count(s, 'forking_time', what, false),
      restoreTimeUs: count(s, 'restore_time', what, false),
      pagesCompared: count(s, 'pages_compared', what, false),
      pagesSkippedCow: count(s, 'pages_skipped_cow', what, false),
      pagesRestored: count(s, 'pages_restored', what, false),
    })),
  };
}

/** The one container's entry of a single-container checkpoint or restore; throws if it is not there. */
export function statsOf<C>(stats: { containers: PodmanContainerStats<C>[] }, id: string): PodmanContainerStats<C> {
  const hit = stats.containers.find((c) => c.id === id || (id.length >= 12 && c.id.startsWith(id)));
  if (!hit) {
    throw new PodmanOutputError(`podman --print-stats has no entry for container ${id}`, {
      ids: stats.containers.map((c) => c.id),
    });
  }
  return hit;
}

/**
 * A stop-and-copy's container side in milliseconds, from the two outputs: how long the container was frozen
 * on the source (CRIU's frozen time) and how long the checkpoint and restore commands took end to end. The
 * downtime (freeze to running on the destination) is frozen + archive transfer + restore; the transfer is
 * measured by the engine, not printed by Podman.
 */
export interface PodmanMoveFigures {
  frozenMs: number;
  checkpointMs: number;
  restoreMs: number;
  /** CRIU's restore alone (forking and restoring the tree), inside restoreMs. */
  criuRestoreMs: number;
  pagesWritten: number;
  pagesRestored: number;
}

export function podmanMoveFigures(
  checkpoint: PodmanCheckpointStats,
  restore: PodmanRestoreStats,
  id: string,
): PodmanMoveFigures {
  const ck = statsOf(checkpoint, id);
  const rs = statsOf(restore, id);
  const ms = (us: number) => Math.round(us / 100) / 10;
  return {
    frozenMs: ms(ck.criu.frozenTimeUs),
    checkpointMs: ms(checkpoint.podmanUs),
    restoreMs: ms(restore.podmanUs),
    criuRestoreMs: ms(rs.criu.restoreTimeUs),
    pagesWritten: ck.criu.pagesWritten,
    pagesRestored: rs.criu.pagesRestored,
  };
}

/** `podman image load` prints "Loaded image: NAME" (or "Loaded image(s): A,B"); returns the names. */
export function parseImageLoadOutput(stdout: string): string[] {
  const names: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /^Loaded image(?:\(s\))?: (.+)$/.exec(line.trim());
    if (m)
      names.push(
        ...m[1]!
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean),
      );
  }
  if (names.length === 0) {
    throw new PodmanOutputError(`podman image load: no "Loaded image:" line in its output: ${stdout.slice(0, 200)}`);
  }
  return names;
}
