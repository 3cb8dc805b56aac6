/**
 * A workload's identity is the process, not the record (issue 9): a pid alone can be registered twice
 * (under two records, or under two nodes that share a kernel) or reused by another process after the
 * first one exits. The triple below names one process for as long as it lives:
 * - `bootId`: /proc/sys/kernel/random/boot_id of the kernel it runs on (distinct per machine and boot;
 *   nodes that share a kernel, like the lab's namespaces, share it too, which is the point);
 * - `pidNs`: the inode of its pid namespace (/proc/<pid>/ns/pid), so a pid means one thing;
 * - `startTime`: field 22 of /proc/<pid>/stat (clock ticks after boot), so a reused pid is a new process.
 */
export interface ProcessIdentity {
  bootId: string;
  pidNs: string;
  startTime: string;
}

/**
 * The key that one claim, one lock and one registration are held under (for a container: node and container id). Records from before identities
 * were read have none: they fall back to node and pid, the best that was known about them.
 */
export function processKey(w: {
  nodeId: string;
  pid: number;
  identity?: ProcessIdentity;
  kind?: string;
  container?: string;
}): string {
  // A container is named by its id on its node: its main pid changes with every move, its id does not.
  if (w.kind === 'podman' && w.container) return `podman:${w.nodeId}:${w.container}`;
  if (!w.identity) return `node:${w.nodeId}:pid:${w.pid}`;
  const { bootId, pidNs, startTime } = w.identity;
  return `proc:${bootId}:${pidNs}:${w.pid}:${startTime}`;
}
