/**
 * The metadata files of a checkpoint archive in the layout Podman and CRI-O export (images under
 * `checkpoint/`, `config.dump`, `spec.dump`, `stats-dump` at the top), as checkpointctl reads them
 * (its lib/metadata.go: ContainerConfig {id, name, rootfsImageName, runtime, createdTime}; spec.dump is an
 * OCI runtime spec whose `io.container.manager` annotation picks the engine). A bare process has no
 * container around it, so some files cannot be filled; `unfilled` says which and why.
 */
import type { ImageInspection } from './inspect.js';

export interface ExportInput {
  checkpointId: string;
  workloadId: string;
  workloadName?: string;
  /** The checkpoint's creation and storing times (ISO). */
  createdAt: string;
  storedAt?: string;
  mode: 'storage' | 'forensic' | 'guard';
  sourceNodeId: string;
  criuVersion?: string;
  kernel?: string;
  inspection: Pick<ImageInspection, 'processes'>;
}

export interface ExportLayout {
  /** File name at the archive's top -> its text. */
  files: Record<string, string>;
  unfilled: { file: string; why: string }[];
}

/** Files a Podman or CRI-O export has that spotlift leaves out for a bare process, and why. */
export const UNFILLED_FOR_A_PROCESS: readonly { file: string; why: string }[] = [
  {
    file: 'rootfs-diff.tar',
    why: 'a bare process has no container root filesystem: it used the node’s own files (declared paths, if any, travel as files.tar in checkpoint/)',
  },
  { file: 'deleted.files', why: 'no container root filesystem, so no files deleted from one' },
  {
    file: 'network.status',
    why: 'no Podman network: the process used its node’s network namespace, whose addresses belong to the node',
  },
  { file: 'bind.mounts', why: 'no container mounts: the mount namespace was the node’s and was not dumped' },
  {
    file: 'container log (ctr.log)',
    why: 'spotlift does not capture a process’s stdout/stderr; they are wherever the process points them',
  },
  {
    file: 'dump.log',
    why: 'CRIU’s log stays on the source node and is removed with the working directory after a good dump',
  },
];

export function exportLayout(input: ExportInput): ExportLayout {
  const root = input.inspection.processes[0];
  const name = input.workloadName ?? input.workloadId;
  const configDump = {
    id: input.checkpointId,
    name,
    // No image: the process ran from the node's filesystem.
    rootfsImageName: '',
    runtime: 'spotlift (bare process, no OCI runtime)',
    createdTime: input.createdAt,
    checkpointedTime: input.storedAt ?? input.createdAt,
  };
  const specDump = {
    ociVersion: '1.0.2',
    process: {
      args: root?.cmdline ?? (root ? [root.comm] : []),
      cwd: root?.cwd ?? '/',
      user: { uid: root?.creds?.uid ?? 0, gid: root?.creds?.gid ?? 0 },
    },
    root: { path: root?.root ?? '/' },
    annotations: {
      // checkpointctl knows Podman, CRI-O and containerd only; libpod makes it read the name from config.dump.
      'io.container.manager': 'libpod',
      'org.spotlift.checkpoint.id': input.checkpointId,
      'org.spotlift.checkpoint.mode': input.mode,
      'org.spotlift.workload.id': input.workloadId,
      'org.criu.checkpoint.host.node': input.sourceNodeId,
      ...(input.criuVersion ? { 'org.criu.checkpoint.criu.version': input.criuVersion } : {}),
      ...(input.kernel ? { 'org.criu.checkpoint.host.kernel': input.kernel } : {}),
    },
  };
  const unfilled = [...UNFILLED_FOR_A_PROCESS];
  const manifest = {
    layout: 'podman/cri-o checkpoint archive: CRIU images under checkpoint/',
    checkpoint: input.checkpointId,
    unfilled,
  };
  return {
    files: {
      'config.dump': `${JSON.stringify(configDump, null, 2)}\n`,
      'spec.dump': `${JSON.stringify(specDump, null, 2)}\n`,
      'spotlift-export.json': `${JSON.stringify(manifest, null, 2)}\n`,
    },
    unfilled,
  };
}
