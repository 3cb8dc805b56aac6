/**
 * Typed builders for Podman 4.3 command lines (Debian 12's podman, with runc and CRIU >= 4.2): the container
 * operations a migration needs. Each returns a plain argv (`['podman', ...]`) that a runner executes directly
 * or over SSH after quoting. Every value is checked here, before anything runs on a node: a name Podman would
 * read as an option, a relative path it would resolve against the session's cwd, options it rejects together.
 * Flags are Podman's own (podman-container-checkpoint(1), podman-container-restore(1)); what was checked in the
 * lab is in /work/shared/LAB.md "Containers".
 */
import { PodmanArgError } from './errors.js';

/** Podman's binary name; callers that need another path replace argv[0]. */
export const PODMAN_BIN = 'podman';

/** Podman's own rule for container names (libpod's NameRegex); ids (hex, full or a prefix) also match it. */
const CONTAINER_REF = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
/** Image references: name[:tag][@digest] with an optional registry host[:port], or an id. No leading '-'. */
const IMAGE_REF = /^[a-zA-Z0-9][a-zA-Z0-9._/:@-]*$/;
const MAX_REF = 253;

function fail(message: string, meta: Record<string, unknown> = {}): never {
  throw new PodmanArgError(message, meta);
}

export function checkContainerRef(ref: string, what = 'container'): string {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > MAX_REF || !CONTAINER_REF.test(ref)) {
    fail(
      `${what} must be a Podman container name or id ([a-zA-Z0-9][a-zA-Z0-9_.-]*, at most ${MAX_REF} characters), got ${JSON.stringify(ref)}`,
      { ref },
    );
  }
  return ref;
}

export function checkImageRef(ref: string): string {
  if (typeof ref !== 'string' || ref.length === 0 || ref.length > MAX_REF || !IMAGE_REF.test(ref)) {
    fail(
      `image must be an image reference (registry/name:tag, name@sha256:..., or an id) starting with a letter or digit, got ${JSON.stringify(ref)}`,
      { ref },
    );
  }
  return ref;
}

/** An absolute path without control characters (Podman resolves a relative one against the SSH session's cwd). */
export function checkAbsPath(path: string, what: string): string {
  const control = typeof path === 'string' && [...path].some((ch) => ch.charCodeAt(0) < 0x20 || ch === '\x7f');
  if (typeof path !== 'string' || !path.startsWith('/') || control || path.length > 4096) {
    fail(`${what} must be an absolute path without control characters, got ${JSON.stringify(path)}`, { path });
  }
  return path;
}

export type CheckpointCompression = 'none' | 'gzip' | 'zstd';

/** Options of `podman container checkpoint`. Defaults are spotlift's, not Podman's (which compresses with zstd). */
export interface PodmanCheckpointOptions {
  container: string;
  /**
   * `--export FILE`: the archive to write. A FIFO works (the source then writes no archive to disk); not
   * /dev/stdout, since Podman also prints the container's name on stdout, into the archive.
   */
  export: string;
  /** `-c`; default 'none': the archive goes through spotlift's checksummed stream, which may compress itself. */
  compress?: CheckpointCompression;
  /** `--tcp-established`; default true (a workload's open connections are part of what moves). */
  tcpEstablished?: boolean;
  /** `--file-locks`; default true. */
  fileLocks?: boolean;
  /** `--print-stats`; default true: CRIU's freeze numbers are how downtime is measured (see stats.ts). */
  printStats?: boolean;
  /**
   * `--pre-checkpoint`: dump memory only and leave the container running (needs soft-dirty tracking: not on
   * this machine's kernel, only in the qemu lab).
   */
  preCheckpoint?: boolean;
  /** `--with-previous`: the final checkpoint after a pre-checkpoint, writing only what changed since. */
  withPrevious?: boolean;
  /** `--leave-running`: checkpoint and keep the container running (a copy to storage, not a move). */
  leaveRunning?: boolean;
  /** `--ignore-volumes`: leave named volumes out of the archive (they move another way). */
  ignoreVolumes?: boolean;
  /** `--ignore-rootfs`: leave the container's root file system changes out. */
  ignoreRootfs?: boolean;
  /** `--keep`: keep CRIU's logs and work files on the node (diagnostics after a failure). */
  keep?: boolean;
}

export function podmanCheckpointArgv(o: PodmanCheckpointOptions): string[] {
  const argv = [PODMAN_BIN, 'container', 'checkpoint'];
  checkAbsPath(o.export, 'export');
  const compress = o.compress ?? 'none';
  if (!['none', 'gzip', 'zstd'].includes(compress))
    fail(`compress must be none, gzip or zstd, got ${String(compress)}`);
  if (o.preCheckpoint && o.withPrevious) {
    fail('preCheckpoint and withPrevious exclude each other: a round is either a pre-checkpoint or the final one');
  }
  if (o.preCheckpoint && o.leaveRunning) {
    // Podman refuses the pair: a pre-checkpoint always leaves the container running.
    fail('preCheckpoint already leaves the container running; do not also ask for leaveRunning');
  }
  argv.push('--export', o.export, '--compress', compress);
  if (o.tcpEstablished ?? true) argv.push('--tcp-established');
  if (o.fileLocks ?? true) argv.push('--file-locks');
  if (o.printStats ?? true) argv.push('--print-stats');
  if (o.preCheckpoint) argv.push('--pre-checkpoint');
  if (o.withPrevious) argv.push('--with-previous');
  if (o.leaveRunning) argv.push('--leave-running');
  if (o.ignoreVolumes) argv.push('--ignore-volumes');
  if (o.ignoreRootfs) argv.push('--ignore-rootfs');
  if (o.keep) argv.push('--keep');
  // `--`: the container reference can never be read as an option, whatever it is.
  argv.push('--', checkContainerRef(o.container));
  return argv;
}

/** Options of `podman container restore --import`. */
export interface PodmanRestoreOptions {
  /**
   * `--import FILE`: the exported archive. Must be a regular file: from a FIFO or /dev/stdin Podman 4.3 fails
   * ("failed extracting runtime information"), as it reads the archive more than once.
   */
  import: string;
  /** `--import-previous FILE`: the pre-checkpoint archive, with a `withPrevious` final one. */
  importPrevious?: string;
  /** `--name`: restore under another name (Podman then gives it a new id as well). */
  name?: string;
  /** `--publish` specs (`[ip:]hostPort:containerPort[/proto]`), replacing the exported port mappings. */
  publish?: string[];
  /** `--tcp-established`; default true (must match the checkpoint's). */
  tcpEstablished?: boolean;
  /** `--file-locks`; default true (must match the checkpoint's). */
  fileLocks?: boolean;
  /** `--print-stats`; default true. */
  printStats?: boolean;
  /** `--ignore-volumes`: the archive's volumes are not restored (they were moved another way). */
  ignoreVolumes?: boolean;
  /** `--ignore-static-ip` / `--ignore-static-mac`: the destination's network assigns new ones. */
  ignoreStaticIp?: boolean;
  ignoreStaticMac?: boolean;
  /** `--keep`: keep CRIU's logs and work files. */
  keep?: boolean;
}

const PUBLISH_SPEC =
  /^(?:(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]):)?(?:\d{1,5}(?:-\d{1,5})?)?:?\d{1,5}(?:-\d{1,5})?(?:\/(?:tcp|udp|sctp))?$/;

export function podmanRestoreArgv(o: PodmanRestoreOptions): string[] {
  const argv = [PODMAN_BIN, 'container', 'restore', '--import', checkAbsPath(o.import, 'import')];
  if (o.importPrevious !== undefined) argv.push('--import-previous', checkAbsPath(o.importPrevious, 'importPrevious'));
  if (o.name !== undefined) argv.push('--name', checkContainerRef(o.name, 'name'));
  for (const p of o.publish ?? []) {
    if (typeof p !== 'string' || !PUBLISH_SPEC.test(p)) {
      fail(`publish must look like [ip:]hostPort:containerPort[/tcp|udp|sctp], got ${JSON.stringify(p)}`, {
        publish: p,
      });
    }
    argv.push('--publish', p);
  }
  if (o.tcpEstablished ?? true) argv.push('--tcp-established');
  if (o.fileLocks ?? true) argv.push('--file-locks');
  if (o.printStats ?? true) argv.push('--print-stats');
  if (o.ignoreVolumes) argv.push('--ignore-volumes');
  if (o.ignoreStaticIp) argv.push('--ignore-static-ip');
  if (o.ignoreStaticMac) argv.push('--ignore-static-mac');
  if (o.keep) argv.push('--keep');
  return argv;
}

/**
 * The rollback on the source after the destination failed to restore: `podman container restore CONTAINER`
 * from the checkpoint Podman kept in the container's own storage (State.CheckpointPath). Checked in the lab:
 * after `checkpoint --export` (into a FIFO, with or without `--keep`) the source container is exited and
 * checkpointed, and this brings it back with its memory; no archive is needed on the source. The CRIU images
 * themselves do stay on the source's disk until the container is removed (the commit point).
 */
export function podmanRestoreLocalArgv(o: {
  container: string;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  printStats?: boolean;
}): string[] {
  const argv = [PODMAN_BIN, 'container', 'restore'];
  if (o.tcpEstablished ?? true) argv.push('--tcp-established');
  if (o.fileLocks ?? true) argv.push('--file-locks');
  if (o.printStats ?? true) argv.push('--print-stats');
  argv.push('--', checkContainerRef(o.container));
  return argv;
}

/** `podman container inspect CONTAINER` (a JSON array of one; see inspect.ts). */
export function podmanInspectArgv(container: string): string[] {
  return [PODMAN_BIN, 'container', 'inspect', '--', checkContainerRef(container)];
}

/** Options of `podman container rm`. */
export interface PodmanRmOptions {
  container: string;
  /** `--force`: also a running container (stops it first). */
  force?: boolean;
  /** `--ignore`: a missing container is no error (idempotent clean-up). */
  ignoreMissing?: boolean;
  /** `--volumes`: also its anonymous volumes (named volumes are never removed by rm). */
  volumes?: boolean;
  /** `--time`: seconds to wait for a stop before killing, with `force`. */
  stopTimeoutS?: number;
}

export function podmanRmArgv(o: PodmanRmOptions): string[] {
  const argv = [PODMAN_BIN, 'container', 'rm'];
  if (o.force) argv.push('--force');
  if (o.ignoreMissing) argv.push('--ignore');
  if (o.volumes) argv.push('--volumes');
  if (o.stopTimeoutS !== undefined) {
    if (!Number.isInteger(o.stopTimeoutS) || o.stopTimeoutS < 0 || o.stopTimeoutS > 3600) {
      fail(`stopTimeoutS must be an integer 0..3600, got ${String(o.stopTimeoutS)}`);
    }
    argv.push('--time', String(o.stopTimeoutS));
  }
  argv.push('--', checkContainerRef(o.container));
  return argv;
}

/** `podman image exists IMAGE`: exit 0 if the node has it, 1 if not (anything else is an error). */
export function podmanImageExistsArgv(image: string): string[] {
  return [PODMAN_BIN, 'image', 'exists', '--', checkImageRef(image)];
}

/** Options of `podman image save`. */
export interface PodmanImageSaveOptions {
  image: string;
  /** `--output FILE`; omitted: the archive goes to stdout (into a stream to the destination). */
  output?: string;
  /** `--format`; default docker-archive (Podman's default; keeps the name and tag for `load`). */
  format?: 'docker-archive' | 'oci-archive';
}

export function podmanImageSaveArgv(o: PodmanImageSaveOptions): string[] {
  const format = o.format ?? 'docker-archive';
  if (format !== 'docker-archive' && format !== 'oci-archive') {
    fail(`format must be docker-archive or oci-archive, got ${String(format)}`);
  }
  const argv = [PODMAN_BIN, 'image', 'save', '--format', format];
  if (o.output !== undefined) argv.push('--output', checkAbsPath(o.output, 'output'));
  argv.push('--', checkImageRef(o.image));
  return argv;
}

/** `podman image load` from a FILE, or from stdin when omitted. Prints "Loaded image: NAME" (see parse). */
export function podmanImageLoadArgv(o: { input?: string } = {}): string[] {
  const argv = [PODMAN_BIN, 'image', 'load'];
  if (o.input !== undefined) argv.push('--input', checkAbsPath(o.input, 'input'));
  return argv;
}

/** `podman volume exists NAME`: exit 0 if the node has it, 1 if not (volume names follow the container rule). */
export function podmanVolumeExistsArgv(name: string): string[] {
  return [PODMAN_BIN, 'volume', 'exists', '--', checkContainerRef(name, 'volume')];
}

/** `podman volume rm --force NAMES...` (`--force`: also one a stopped container still names). */
export function podmanVolumeRmArgv(names: readonly string[]): string[] {
  return [PODMAN_BIN, 'volume', 'rm', '--force', '--', ...names.map((n) => checkContainerRef(n, 'volume'))];
}
