import { shellJoin, shq } from '@spotlift/transport';
import { type NodeCommand, nodeCommand } from '../node-command.js';
import { NOW_NS_FN } from '../node-scripts.js';
import {
  checkAbsPath,
  podmanCheckpointArgv,
  podmanImageExistsArgv,
  podmanImageLoadArgv,
  podmanImageSaveArgv,
  podmanInspectArgv,
  podmanRestoreArgv,
  podmanRestoreLocalArgv,
  podmanRmArgv,
  podmanVolumeExistsArgv,
  podmanVolumeRmArgv,
} from '../../podman/argv.js';

/**
 * The `podman` kind's node commands: the typed argvs of libs/engine/src/podman, wrapped in the little shell
 * each needs on the node (a FIFO, a bound on every wait, files for what must not go into a stream). Podman's
 * settings (runc, no default ulimits, cgroupfs) come from the node's containers.conf, not from here.
 */

/** Files the checkpoint leaves in the source's migration directory (the archive itself never touches its disk). */
export const CHECKPOINT_FILES = {
  fifo: 'export.fifo',
  stats: 'checkpoint-stats.json',
  log: 'checkpoint.log',
  rc: 'checkpoint.rc',
  start: 'checkpoint.start',
} as const;

/** `podman container inspect REF` (a JSON array; `[]` with exit 125 for an unknown container). */
export function inspect(ref: string): NodeCommand {
  return nodeCommand(shellJoin(podmanInspectArgv(ref)));
}

/** Exit 0: the node has the image; 1: it lacks it. */
export function imageExists(image: string): NodeCommand {
  return nodeCommand(shellJoin(podmanImageExistsArgv(image)));
}

/** The sender of an image copy: the archive on stdout (a stream's sending side, see DirectoryStreamer.armPipe). */
export function imageSave(image: string): NodeCommand {
  return nodeCommand(shellJoin(podmanImageSaveArgv({ image })));
}

/**
 * The receiver of an image copy: loads stdin. Podman's "Loaded image:" line goes to a file: the stream's
 * receiver prints nothing but the checksum of what it received.
 */
export function imageLoad(outFile: string): NodeCommand {
  return nodeCommand(`${shellJoin(podmanImageLoadArgv())} >${shq(checkAbsPath(outFile, 'outFile'))}`);
}

/**
 * The checkpoint, as the sending side of a stream: `checkpoint --export` into a FIFO that `cat` copies to
 * stdout, so the archive goes straight into the SSH channel (no copy on the source's disk; Podman prints the
 * container's name on stdout, so stdout itself cannot be the export). Stats, log and exit code go to files in
 * `dir`. Both waits are bounded: podman by `timeout`, and the FIFO's reader too, since a checkpoint that fails
 * before it opens the FIFO would leave a bare `cat FIFO` waiting for ever (it once held the lab for 18 min);
 * the reader is killed as soon as the checkpoint failed.
 */
export function checkpointToStdout(
  container: string,
  dir: string,
  timeoutS: number,
  round: CheckpointRound = 'final',
): NodeCommand {
  const d = shq(checkAbsPath(dir, 'dir'));
  const f = CHECKPOINT_FILES;
  const checkpoint = shellJoin(
    podmanCheckpointArgv({
      container,
      export: `${dir}/${f.fifo}`,
      ...(round === 'pre' ? { preCheckpoint: true } : {}),
      ...(round === 'with-previous' ? { withPrevious: true } : {}),
      ...(round === 'leave-running' ? { leaveRunning: true } : {}),
    }),
  );
  const t = Math.max(1, Math.ceil(timeoutS));
  const lines = [
    NOW_NS_FN,
    `cd ${d} || exit 1`,
    `rm -f ${f.fifo} ${f.rc}; mkfifo -m 600 ${f.fifo} || exit 1`,
    `now_ns > ${f.start}`,
    `( timeout ${t} ${checkpoint} >${f.stats} 2>${f.log}; echo $? >${f.rc} ) &`,
    'ck=$!',
    `timeout ${t} cat ${f.fifo} & rd=$!`,
    'wait $ck',
    `rc=$(cat ${f.rc} 2>/dev/null); rc=\${rc:-1}`,
    '[ "$rc" = 0 ] || kill $rd 2>/dev/null',
    'wait $rd; rrc=$?',
    `rm -f ${f.fifo}`,
    `[ "$rc" = 0 ] || { tail -c 4000 ${f.log} >&2; exit $rc; }`,
    '[ "$rrc" = 0 ] || { echo "reading the export FIFO failed ($rrc)" >&2; exit 1; }',
  ];
  return nodeCommand(lines.join('\n'));
}

/**
 * Which checkpoint: `final` (stop-and-copy), `pre` (`--pre-checkpoint`: memory only, the container keeps
 * running) or `with-previous` (the final one after a pre-checkpoint: only what changed since).
 */
export type CheckpointRound = 'final' | 'pre' | 'with-previous' | 'leave-running';

/** The receiver of the checkpoint archive: a regular file (`restore --import` reads it more than once). */
export function receiveArchive(path: string): NodeCommand {
  return nodeCommand(`cat >${shq(checkAbsPath(path, 'archive'))}`);
}

/** The sender of a stored archive (a checkpoint's `checkpoint.tar` or `image.tar`): the file on stdout. */
export function sendStoredFile(path: string): NodeCommand {
  return nodeCommand(`cat ${shq(checkAbsPath(path, 'stored file'))}`);
}

/** `restore --import` of the received archive (stats JSON on stdout), bounded. */
export function restoreImport(archive: string, timeoutS: number, previous?: string): NodeCommand {
  const argv = podmanRestoreArgv({ import: archive, ...(previous !== undefined ? { importPrevious: previous } : {}) });
  return nodeCommand(`timeout ${Math.max(1, Math.ceil(timeoutS))} ${shellJoin(argv)}`);
}

/** The rollback on the source: restore the container from the checkpoint Podman kept in its storage. */
export function restoreLocal(container: string, timeoutS: number): NodeCommand {
  return nodeCommand(`timeout ${Math.max(1, Math.ceil(timeoutS))} ${shellJoin(podmanRestoreLocalArgv({ container }))}`);
}

/** Removes the container, running or not (`--ignore`: a missing one is no error). */
export function remove(container: string): NodeCommand {
  return nodeCommand(shellJoin(podmanRmArgv({ container, force: true, ignoreMissing: true, stopTimeoutS: 0 })));
}

/**
 * Can this node run a checkpoint/restore of a container: podman, runc and criu on the PATH, Podman's default
 * runtime runc (Debian's crun cannot checkpoint here), and `criu check`. Prints `RUNTIME <name>` and
 * `CRIU_OK yes|no`; exit 3 when a binary is missing (its name on stderr).
 */
export const RUNTIME_CHECK: NodeCommand = nodeCommand(
  [
    'for b in podman runc criu; do command -v $b >/dev/null || { echo "$b is not installed" >&2; exit 3; }; done',
    `echo "RUNTIME $(podman info --format '{{.Host.OCIRuntime.Name}}' 2>/dev/null)"`,
    'if criu check >/dev/null 2>&1; then echo "CRIU_OK yes"; else echo "CRIU_OK no"; fi',
  ].join('\n'),
);

/** Prints `LISTEN <port>` for each of `ports` a TCP or UDP socket is bound to on the node (ss from iproute2). */
export function portsInUse(ports: readonly number[]): NodeCommand {
  const list = ports.map((p) => String(Math.trunc(p))).join(' ');
  return nodeCommand(
    `for p in ${list}; do ss -Htuln "sport = :$p" 2>/dev/null | grep -q . && echo "LISTEN $p"; done; true`,
  );
}

/**
 * Waits (at most `timeoutS`) until no `podman container checkpoint` or `restore` naming `path` runs: a dead
 * worker's commands go on without it, and nothing may be decided under them. `path` is a migration's own
 * directory (the export FIFO's, the archive's), so a shared pid namespace (the lab's) cannot confuse two nodes.
 * Prints `PODMAN_IDLE yes`, or `PODMAN_IDLE no` with exit 1.
 */
export function waitPodmanIdle(path: string, timeoutS: number): NodeCommand {
  const pattern = shq(
    `podman container (checkpoint|restore) .*${checkAbsPath(path, 'path').replace(/[.[\]{}()*+?^$|\\]/g, '\\$&')}`,
  );
  const rounds = Math.max(1, Math.ceil(timeoutS * 5));
  return nodeCommand(
    `i=0; while pgrep -f -- ${pattern} >/dev/null; do [ $i -ge ${rounds} ] && { echo "PODMAN_IDLE no"; exit 1; }; i=$((i + 1)); sleep 0.2; done; echo "PODMAN_IDLE yes"`,
  );
}

/** Prints `VOLUME <name>` for each of `names` the node has (`restore --import` refuses to overwrite one). */
export function volumesPresent(names: readonly string[]): NodeCommand {
  return nodeCommand(
    names.map((n) => `${shellJoin(podmanVolumeExistsArgv(n))} && echo ${shq(`VOLUME ${n}`)}`).join('; ') + '; true',
  );
}

/** Removes named volumes (after the container that used them is gone from the node). */
export function removeVolumes(names: readonly string[]): NodeCommand {
  return nodeCommand(shellJoin(podmanVolumeRmArgv(names)));
}
