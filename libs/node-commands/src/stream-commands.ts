import { type NodeCommand, nodeCommand } from './node-command.js';
import { shq } from './shell.js';

/**
 * The commands of libs/transport's DirectoryStreamer: a tar stream relayed by the orchestrator from one node
 * to another, started by a `go` line, hashed on arrival.
 */

/** Exclude patterns are matched by the node's shell (`case`), so only plain glob characters are allowed. */
const EXCLUDE_PATTERN = /^\.\/[A-Za-z0-9._*?-]+$/;

/**
 * `tar` of a directory without the top-level entries matching `exclude` (`./*.log`, `./round-*`): busybox tar
 * has no `--exclude` (qemu lab guests), so the shell lists the entries to send. Image directories hold only
 * CRIU's file names (no blanks), so the unquoted `$(...)` splits them correctly.
 */
export function tarCommand(dir: string, exclude: readonly string[]): NodeCommand {
  const d = shq(dir);
  if (!exclude.length) return nodeCommand(`tar -C ${d} -cf - .`);
  for (const p of exclude) if (!EXCLUDE_PATTERN.test(p)) throw new Error(`unsupported exclude pattern '${p}'`);
  const list =
    `cd ${d} && for f in * .[!.]* ..?*; do { [ -e "$f" ] || [ -L "$f" ]; } || continue; ` +
    `case "./$f" in ${exclude.join('|')}) continue ;; esac; echo "./$f"; done`;
  return nodeCommand(`tar -C ${d} -cf - $(${list})`);
}

/** How an image directory's stream is unpacked on the destination. */
export const UNPACK_TAR = nodeCommand('tar -xf -');

/** Runs `command` only after a `go` line arrives on stdin; anything else ends it unrun (exit 125). */
export function armed(command: NodeCommand): NodeCommand {
  return nodeCommand(`read spotlift_go; [ "$spotlift_go" = go ] || exit 125; ${command}`);
}

/**
 * The receiving end: unpacks stdin in `dir` with `unpack`, runs `after` there, then prints the sha256 of what
 * arrived. POSIX sh only (dash, busybox ash): tee feeds the unpacker and, through a fifo, a background
 * sha256sum; `wait` makes sure the hash is complete before it is printed. The fifo and hash files are named
 * after the receiving shell: two streams may arrive in one directory at once (image files, the workload's
 * files).
 */
export function receiveStream(dir: string, unpack: NodeCommand, after?: NodeCommand): NodeCommand {
  const d = shq(dir);
  return nodeCommand(
    `set -e; mkdir -p ${d}; cd ${d}; rx=.spotlift-rx.$$; rm -f $rx.fifo; mkfifo $rx.fifo; ` +
      `sha256sum < $rx.fifo > $rx.sha256 & ` +
      `tee $rx.fifo | ${unpack}; wait; ${after ? `${after}; ` : ''}` +
      `cut -c1-64 $rx.sha256; rm -f $rx.fifo $rx.sha256`,
  );
}
