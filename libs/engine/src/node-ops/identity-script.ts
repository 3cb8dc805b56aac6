/**
 * The one script that says which processes a node's pids are (registration's inspectTree and the sweeper's
 * processFacts both print it, so an identity is read one way everywhere): `BOOT <boot id>` and, per pid that
 * exists, `PROC <pid> <base64 of /proc/pid/stat> <pid namespace inode> <cksum of its cmdline>`. The stat line
 * travels base64-encoded: a process's name may hold spaces, ')' or a newline and cannot forge another line.
 * Read by process-inspection.ts `parseIdentities`.
 */
export function identityLines(pids: readonly number[]): string[] {
  const lines = ['echo "BOOT $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"'];
  for (const pid of pids) {
    const p = `/proc/${pid}`;
    lines.push(
      `[ -d ${p} ] && echo "PROC ${pid} $(base64 -w0 ${p}/stat 2>/dev/null) ` +
        `$(readlink ${p}/ns/pid 2>/dev/null | tr -dc 0-9) $(cksum < ${p}/cmdline 2>/dev/null | cut -d' ' -f1)"`,
    );
  }
  return lines;
}
