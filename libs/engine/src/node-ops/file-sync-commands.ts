import { shq } from '@spotlift/transport';
import { type NodeCommand, nodeCommand } from './node-command.js';

/**
 * Shell commands that copy a workload's declared files from the source to the destination as one tar stream
 * per round (carried by DirectoryStreamer.armPipe, checksummed end to end). Round one sends everything; each
 * later round sends what changed since the previous round began, plus the list of entries that went away,
 * which the destination removes: after the round inside the freeze the destination mirrors the source.
 *
 * State between rounds lives in FILE_SYNC_STATE_DIR below the migration's directory on the source:
 *   mark           its mtime is when the last round began, 1 s early: file times come from the kernel's
 *              coarse clock (a tick behind), and a file written just as the round began must count
 *              as changed; sending a file again is harmless
 *   sent       NUL-separated, sorted list of every entry the destination has
 *   changed    the entries this round sends; deleted: those it removes (found, now: scratch)
 * GNU find, sort, comm and tar: the nodes spotlift copies files between are full distributions.
 */

/**
 * How early a round's mark is set: a file written up to this long before a round began still counts as changed
 * in the next one (file times come from the kernel's coarse clock; some file systems keep whole seconds).
 */
export const MARK_MARGIN_MS = 1000;

/** Below the migration's directory on the source; image streams leave it out. */
export const FILE_SYNC_STATE_DIR = 'file-sync';

/** Declared paths are absolute, normalised, and outside the kernel's virtual file systems. */
const PATH_SHAPE = /^(?:\/[A-Za-z0-9._@%+=:,~-]+)+$/;
const VIRTUAL = /^\/(?:proc|sys|dev|run)(?:\/|$)/;

/**
 * Trees of the system and of spotlift itself: a hostile source could otherwise write them, as root, on every
 * destination (its sshd host keys, authorized_keys, cron, binaries, spotlift's own images). `/lib*` is matched
 * apart (lib, lib32, lib64, libx32).
 */
export const SYSTEM_TREES = ['/etc', '/usr', '/bin', '/sbin', '/boot', '/root', '/var/lib/spotlift', '/var/spool/cron'];
const LIB = /^\/lib(?:32|64|x32)?(?:\/|$)/;
/** Where a declared path must be one level deeper than elsewhere: shared by every user or service. */
const SHARED_PARENTS = ['/home', '/var'];

const within = (path: string, root: string) => path === root || path.startsWith(`${root}/`);

/**
 * Whether `path` may be declared as a workload's files; the reason when not. The rule:
 * - absolute, normalised, plain characters; not under /proc, /sys, /dev, /run;
 * - not in, and not above, a system tree ({@link SYSTEM_TREES}, /lib*) or a `reserved` one (the configured
 *   image and checkpoint roots, the SSH login's home): `/var` or `/var/lib` would hold /var/lib/spotlift;
 * - at least two components deep (`/srv/app`, not `/srv`, `/opt`, `/tmp`, `/home`), three under /home and
 *   /var (`/home/u/app`, `/var/lib/app`: not a whole home, not /var/log);
 * - no `.ssh` component (any account's login keys).
 */
export function checkDeclaredPath(path: string, reserved: readonly string[] = []): string | undefined {
  if (!PATH_SHAPE.test(path)) return `'${path}' is not an absolute path of plain characters`;
  const parts = path.split('/').slice(1);
  if (parts.some((part) => part === '.' || part === '..')) return `'${path}' has . or .. in it`;
  if (VIRTUAL.test(path)) return `'${path}' is on a kernel file system (/proc, /sys, /dev, /run)`;
  if (LIB.test(path)) return `'${path}' is a system path (/lib*)`;
  for (const root of [...SYSTEM_TREES, ...reserved.map((r) => r.replace(/\/+$/, '')).filter(Boolean)]) {
    if (within(path, root)) return `'${path}' is in ${root} (a system, spotlift or SSH login path)`;
    if (within(root, path)) return `'${path}' holds ${root} (a system, spotlift or SSH login path)`;
  }
  if (parts.includes('.ssh')) return `'${path}' holds login keys (.ssh)`;
  const shared = SHARED_PARENTS.some((p) => within(path, p));
  if (parts.length < (shared ? 3 : 2))
    return `'${path}' is too close to / (declare the workload's own directory below it${shared ? ', two levels below /home or /var' : ''})`;
  return undefined;
}

const relative = (path: string) => path.replace(/^\/+/, '');

/** Drops duplicates and paths inside another declared path (they would be sent twice). */
export function outermostPaths(paths: readonly string[]): string[] {
  const sorted = [...new Set(paths)].sort();
  return sorted.filter((p) => !sorted.some((q) => q !== p && p.startsWith(`${q}/`)));
}

/** Is `path` on storage both nodes share (same group, and under a shared path of each)? */
export function onSharedStorage(
  path: string,
  a: { group: string; paths: string[] } | undefined,
  b: { group: string; paths: string[] } | undefined,
): boolean {
  if (!a || !b || a.group !== b.group) return false;
  const under = (roots: string[]) =>
    roots.map((r) => r.replace(/\/+$/, '')).some((r) => path === r || path.startsWith(`${r}/`));
  return under(a.paths) && under(b.paths);
}

/** The summary line a round prints on stderr before its tar stream. */
export const ROUND_SUMMARY = /SPOTLIFT_FILES sent=(\d+) deleted=(\d+)/;

/**
 * One round's sender: updates the state files, prints the summary on stderr, then writes the tar stream.
 * A file changing while tar reads it (exit 1) is fine while the workload runs, since the next round sends it
 * again; inside the freeze it fails the round.
 */
export function sendRound(dir: string, paths: readonly string[], opts: { final: boolean }): NodeCommand {
  const state = `${dir}/${FILE_SYNC_STATE_DIR}`;
  const rels = paths.map((p) => shq(relative(p))).join(' ');
  const f = (name: string) => shq(`${state}/${name}`);
  const tarOk = opts.final ? '[ $rc -eq 0 ]' : '[ $rc -le 1 ]';
  return nodeCommand(
    [
      `mkdir -p ${shq(state)} && cd / || exit 1`,
      // the mark: now minus the margin, to the nanosecond (GNU date and touch)
      `ns=$(( $(date +%s%N) - ${MARK_MARGIN_MS * 1_000_000} ))`,
      `touch -d "@$((ns / 1000000000)).$(printf %09d $((ns % 1000000000)))" ${f('mark.next')} || exit 1`,
      // no pipe: dash has no pipefail, and a declared path that vanished must fail the round
      `find ${rels} -print0 > ${f('found')} || exit 1`,
      `LC_ALL=C sort -z < ${f('found')} > ${f('now')} || exit 1`,
      `[ -e ${f('sent')} ] || : > ${f('sent')}`,
      `LC_ALL=C comm -z -23 ${f('sent')} ${f('now')} > ${f('deleted')} || exit 1`,
      `if [ -e ${f('mark')} ]; then find ${rels} \\( -newer ${f('mark')} -o -cnewer ${f('mark')} \\) -print0; ` +
        `else cat ${f('now')}; fi > ${f('changed')} || exit 1`,
      `sent=$(tr -cd '\\000' < ${f('changed')} | wc -c); deleted=$(tr -cd '\\000' < ${f('deleted')} | wc -c)`,
      // the deletion list travels in the same stream, to the same path on the destination
      `printf '%s\\000' ${shq(`${relative(state)}/deleted`)} >> ${f('changed')}`,
      `mv -f ${f('now')} ${f('sent')} && mv -f ${f('mark.next')} ${f('mark')} || exit 1`,
      `echo "SPOTLIFT_FILES sent=$sent deleted=$deleted" >&2`,
      `tar -cf - --null --no-recursion -T ${f('changed')}; rc=$?`,
      `${tarOk}`,
    ].join('\n'),
  );
}

/**
 * GNU tar unpacking at / only the members under `paths` (relative to /), keeping modes, owners and times
 * (root workloads need their owners): whatever else a stream holds is skipped. The orchestrator validated the
 * stream already (TarGuard); this is the destination's own line. A name with no member in the stream (nothing
 * under it changed this round) is not an error: tar reports it and exits 2, and only those lines are let through.
 */
export function unpackOnly(paths: readonly string[]): NodeCommand {
  const names = paths.map((p) => shq(relative(p))).join(' ');
  // `|| rc=$?`: the receiver runs under `set -e`, which a subshell inherits
  return nodeCommand(
    `(e=.spotlift-tar.$$.err; rc=0; LC_ALL=C tar -C / -xpf - -- ${names} 2>$e || rc=$?; ` +
      `if [ $rc -eq 2 ] && ! grep -qv -e ': Not found in archive$' -e '^tar: Exiting with failure status due to previous errors$' $e; ` +
      `then rc=0; fi; cat $e >&2; rm -f $e; exit $rc)`,
  );
}

/**
 * The receiver's side: unpack the declared paths and the deletion list at / (see {@link unpackOnly}); then
 * remove what went away on the source. The deletion list arrives inside the stream at the source's state path
 * (`dir`, below the migration's directory, which cleanup removes on every node); it is removed once applied,
 * so a later stream that ends early cannot apply it again (the source writes a new one each round). Entries are removed only where
 * `find` reaches them from a declared path without following a symbolic link (an entry through a link the
 * destination holds, pointing anywhere, is left alone).
 */
export function receiveRound(dir: string, paths: readonly string[]): { unpack: NodeCommand; after: NodeCommand } {
  const listPath = `${dir}/${FILE_SYNC_STATE_DIR}/deleted`;
  const list = shq(listPath);
  const rels = paths.map((p) => shq(relative(p))).join(' ');
  const have = '.spotlift-have.$$';
  return {
    unpack: unpackOnly([...paths, listPath]),
    after: nodeCommand(
      `if [ -s ${list} ]; then (cd / && find -H ${rels} -print0 2>/dev/null; true) | LC_ALL=C sort -z > ${have}; ` +
        `LC_ALL=C sort -z < ${list} | LC_ALL=C comm -z -12 - ${have} | (cd / && xargs -0 -r rm -rf --); rm -f ${have}; fi; ` +
        `rm -f ${list}`,
    ),
  };
}

/** The SSH login's home, printed first by {@link inspectPaths} and {@link freeSpaceFor}: no declared path may hold it. */
const PRINT_HOME = `printf 'HOME\\t%s\\n' "$HOME"; `;

export function parseHome(out: string): string | undefined {
  return /^HOME\t(\/.*)$/m.exec(out)?.[1];
}

/** Prints `MISSING <path>` for each declared path absent on the source, else `SIZE <KiB> <path>`. */
export function inspectPaths(paths: readonly string[]): NodeCommand {
  return nodeCommand(
    PRINT_HOME +
      `for p in ${paths.map(shq).join(' ')}; do if [ -e "$p" ] || [ -L "$p" ]; then ` +
      `printf 'SIZE\\t%s\\t%s\\n' "$(du -sk "$p" 2>/dev/null | cut -f1)" "$p"; else printf 'MISSING\\t%s\\n' "$p"; fi; done`,
  );
}

/** The source's answer to {@link inspectPaths}: missing paths, and the KiB each present one holds. */
export function parseInspect(out: string): { missing: string[]; kib: Map<string, number> } {
  const missing = [...out.matchAll(/^MISSING\t(.+)$/gm)].map((m) => m[1]!);
  const kib = new Map([...out.matchAll(/^SIZE\t(\d*)\t(.+)$/gm)].map((m) => [m[2]!, Number(m[1] || 0)]));
  return { missing, kib };
}

/**
 * On the destination, per declared path: the file system that will hold it (that of its nearest existing
 * ancestor), its free KiB, and the KiB the path holds there already (an older copy is overwritten, not added
 * to). Prints `FREE<tab>avail<tab>held<tab>mount<tab>path`.
 */
export function freeSpaceFor(paths: readonly string[]): NodeCommand {
  return nodeCommand(
    PRINT_HOME +
      `for p in ${paths.map(shq).join(' ')}; do q=$p; while [ ! -e "$q" ] && [ "$q" != / ]; do q=$(dirname "$q"); done; ` +
      `h=0; if [ -e "$p" ]; then h=$(du -sk "$p" 2>/dev/null | cut -f1); fi; ` +
      `d=$(df -P -k "$q" | awk 'NR == 2 {print $4 "\\t" $6}'); printf 'FREE\\t%s\\t%s\\t%s\\n' "$d" "\${h:-0}" "$p"; done`,
  );
}

export interface PathSpace {
  path: string;
  mount: string;
  availKib: number;
  heldKib: number;
}

export function parseFreeSpace(out: string): PathSpace[] {
  return [...out.matchAll(/^FREE\t(\d+)\t([^\t]*)\t(\d+)\t(.+)$/gm)].map((m) => ({
    availKib: Number(m[1]),
    mount: m[2]!,
    heldKib: Number(m[3]),
    path: m[4]!,
  }));
}

/** A destination file system without room for the declared paths it would receive. */
export interface DiskShortfall {
  mount: string;
  paths: string[];
  needKib: number;
  availKib: number;
}

/**
 * Which destination file systems lack room: each path needs what the source holds beyond what the destination
 * holds there already; paths on one file system add up.
 */
export function diskShortfalls(sourceKib: ReadonlyMap<string, number>, space: readonly PathSpace[]): DiskShortfall[] {
  const byMount = new Map<string, DiskShortfall>();
  for (const s of space) {
    const need = Math.max(0, (sourceKib.get(s.path) ?? 0) - s.heldKib);
    const m = byMount.get(s.mount) ?? { mount: s.mount, paths: [], needKib: 0, availKib: s.availKib };
    m.paths.push(s.path);
    m.needKib += need;
    byMount.set(s.mount, m);
  }
  return [...byMount.values()].filter((m) => m.needKib > m.availKib);
}

/** A checkpoint keeps the declared files next to its images, as one tar file covered by their checksums. */
export const CHECKPOINT_FILES_TAR = 'workload-files.tar';

/** The declared paths as one tar stream, relative to / (a checkpoint stores it; a restore unpacks it at /). */
export function archivePaths(paths: readonly string[]): NodeCommand {
  return nodeCommand(`cd / && tar -cf - -- ${paths.map((p) => shq(relative(p))).join(' ')}`);
}

/** Unpacks a stream of {@link archivePaths} in place (only those paths), keeping modes, owners and times. */
export const unpackAtRoot = (paths: readonly string[]): NodeCommand => unpackOnly(paths);

/** Writes the stream of {@link archivePaths} as the checkpoint's tar file (run in its image directory). */
export const storeArchive = (): NodeCommand => nodeCommand(`cat > ${CHECKPOINT_FILES_TAR}`);

/** Streams a stored checkpoint's tar file back out. */
export const readStoredArchive = (imageDir: string): NodeCommand =>
  nodeCommand(`cat ${shq(`${imageDir}/${CHECKPOINT_FILES_TAR}`)}`);
