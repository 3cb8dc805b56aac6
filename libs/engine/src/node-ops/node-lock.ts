import { randomBytes } from 'node:crypto';
import type { NodeRecord } from '@spotlift/domain';
import { type NodeShell, shq } from '@spotlift/transport';
import { nodeLockPath } from './node-scripts.js';

/**
 * The node-side lock of a process (issue 9): an flock on /run/spotlift/locks/<key>.lock, held on the node by a
 * detached holder (`setsid`), not by the job's SSH channel. The holder keeps the lock while the lease file
 * next to it (`<lock>.lease`: the owner's token and the holder's pid; its mtime is the last renewal) is
 * fresh; the job renews it every few seconds over any channel. A broken channel, even a dead orchestrator,
 * leaves the lock held until the lease runs out (`leaseMs`), so a second freezer (another installation,
 * whose claims live in another Redis) cannot dump a tree this job froze while it reconnects. Release removes
 * the lease and ends the holder at once. The holder needs sh, util-linux flock, setsid, stat -c, date +%s
 * (busybox has all but flock; the qemu guests carry util-linux's).
 */

export interface NodeLockOptions {
  /**
   * Whose lock it is ([A-Za-z0-9._:-]). Taking a lock whose live holder has the same owner re-attaches to it
   * (its lease renewed) instead of being refused. Default: a fresh random token, so only this NodeLock.
   */
  owner?: string;
  /** How long the lock outlives the last renewal (default 20 s; whole seconds on the node). */
  leaseMs?: number;
  /** How often the lease is renewed (default 5 s). */
  renewMs?: number;
}

export type LeaseRenewal = 'renewed' | 'lost' | 'unreachable';

/** A lock held on a node by a detached holder under a lease this object renews. */
export interface NodeLock {
  readonly path: string;
  readonly owner: string;
  /** True once a renewal found the lease gone (its holder ended: the lock may be another session's now). */
  readonly lost: boolean;
  /** Renews the lease now (a timer does it every `renewMs`). 'lost': the holder is gone; renewals stop. */
  renew(): Promise<LeaseRenewal>;
  /** Ends the holder and the lease; the lock is free when this resolves. Never throws; safe to call twice. */
  release(): Promise<void>;
}

const DEFAULT_LEASE_MS = 20_000;
const DEFAULT_RENEW_MS = 5_000;

/** `read` of the lease file: its owner `w` and holder pid `p`, when the file is there. */
const READ_LEASE = `[ -f "$f" ] && read -r w p < "$f"`;

/**
 * The detached holder (`sh -c`, positional: lock, owner, lease file, answer file, lease seconds): takes the
 * flock on fd 9, writes the lease and answers, then holds the lock while the lease is its own and fresh; it
 * removes its lease when it ends. Single quotes only around it: none inside. The lease is counted in whole
 * seconds (`stat -c %Y`, `date +%s`), so it ends when it is *more* than `$5` seconds old (`-le`): between $5 and
 * $5 + 1 s after the last renewal, never before (with `-lt` a 1 s lease renewed every 0.3 s was dropped).
 */
const HOLDER = [
  'exec 9>>"$1"',
  'if flock -n 9; then echo "$2 $$" > "$3"; echo LOCKED > "$4"; else echo BUSY > "$4"; exit 75; fi',
  'exec </dev/null >/dev/null 2>&1',
  // Children get no fd 9 (`9>&-`): the lock ends with this shell, at once when release kills it.
  'while [ -f "$3" ] && read -r w p < "$3" && [ "$w $p" = "$2 $$" ] && m=$(stat -c %Y "$3" 9>&-) && ' +
    '[ $(( $(date +%s 9>&-) - m )) -le "$5" ]; do sleep 1 9>&-; done',
  'if [ -f "$3" ] && read -r w p < "$3" && [ "$p" = "$$" ]; then rm -f "$3"; fi',
].join('\n');

function vars(path: string, owner: string): string {
  return `l=${shq(path)}; f=${shq(`${path}.lease`)}; o=${shq(owner)}`;
}

/**
 * Prints `LOCKED` when this owner holds the lock now (taken, or its live holder re-attached to), `LOCK_BUSY`
 * and exits 75 when another holds it; anything else is an error (exit 1, why on stderr).
 */
export function takeLockScript(path: string, owner: string, leaseS: number): string {
  const dir = path.slice(0, path.lastIndexOf('/')) || '/';
  return [
    `${vars(path, owner)}; n=${Math.max(1, Math.ceil(leaseS))}`,
    `command -v setsid >/dev/null && command -v flock >/dev/null || { echo "setsid or flock missing" >&2; exit 1; }`,
    `mkdir -p ${shq(dir)} && : >> "$l" || exit 1`,
    // Our own holder still alive: renew its lease and go on holding (a job that lost its channel, or ran again).
    `if ${READ_LEASE} && [ "$w" = "$o" ] && [ -d "/proc/$p" ] && touch -c "$f" && ! flock -n "$l" true; then echo LOCKED; exit 0; fi`,
    `r=$(mktemp) || exit 1`,
    `setsid sh -c '${HOLDER}' spotlift-lock "$l" "$o" "$f" "$r" "$n" </dev/null >/dev/null 2>&1 &`,
    `i=0; while [ ! -s "$r" ] && [ $i -lt 1000 ]; do sleep 0.01; i=$((i + 1)); done`,
    `a=$(cat "$r" 2>/dev/null); rm -f "$r"`,
    `case "$a" in LOCKED) echo LOCKED ;; BUSY) echo LOCK_BUSY; exit 75 ;; *) echo "the lock holder did not answer" >&2; exit 1 ;; esac`,
  ].join('\n');
}

/** Prints `RENEWED` when the lease is this owner's and its holder lives (mtime now), else `LEASE_LOST`. */
export function renewLockScript(path: string, owner: string): string {
  return (
    `${vars(path, owner)}; if ${READ_LEASE} && [ "$w" = "$o" ] && [ -d "/proc/$p" ] && touch -c "$f"; ` +
    `then echo RENEWED; else echo LEASE_LOST; fi`
  );
}

/**
 * Ends this owner's holder (SIGTERM; its children hold no lock fd) and waits up to 3 s for the flock to be
 * free. Another owner's lease is left alone. Prints `RELEASED`.
 */
export function releaseLockScript(path: string, owner: string): string {
  return [
    vars(path, owner),
    `if ${READ_LEASE} && [ "$w" = "$o" ]; then rm -f "$f"; kill "$p" 2>/dev/null; ` +
      `i=0; while ! flock -n "$l" true && [ $i -lt 300 ]; do sleep 0.01; i=$((i + 1)); done; fi`,
    'echo RELEASED',
  ].join('\n');
}

/**
 * Takes the lock of `key` on `node`: the lock, or undefined when another owner holds it (it must not touch
 * what the lock guards). Throws when the node could not answer either way.
 */
export async function takeNodeLock(
  shell: NodeShell,
  node: NodeRecord,
  key: string,
  opts: NodeLockOptions = {},
): Promise<NodeLock | undefined> {
  const path = nodeLockPath(key);
  const owner = (opts.owner ?? randomBytes(8).toString('hex')).replace(/[^A-Za-z0-9._:-]/g, '_');
  const leaseMs = opts.leaseMs ?? DEFAULT_LEASE_MS;
  const res = await shell.exec(node, takeLockScript(path, owner, leaseMs / 1000), { timeoutMs: 20_000 });
  if (/^LOCK_BUSY$/m.test(res.stdout)) return undefined;
  if (!/^LOCKED$/m.test(res.stdout)) {
    throw new Error(`taking the lock ${path} on ${node.id} failed: ${res.stderr.trim() || 'no answer'}`.slice(0, 400));
  }
  let lost = false;
  let released: Promise<void> | undefined;
  const renew = async (): Promise<LeaseRenewal> => {
    if (lost || released) return 'lost';
    try {
      const r = await shell.exec(node, renewLockScript(path, owner), { timeoutMs: 15_000 });
      if (/^RENEWED$/m.test(r.stdout)) return 'renewed';
      if (!/^LEASE_LOST$/m.test(r.stdout)) return 'unreachable';
    } catch {
      // The node did not answer: the lease may still be fresh there; the next renewal tries again.
      return 'unreachable';
    }
    lost = true;
    clearInterval(timer);
    return 'lost';
  };
  const timer = setInterval(() => void renew(), opts.renewMs ?? DEFAULT_RENEW_MS);
  timer.unref();
  const release = () =>
    (released ??= (async () => {
      clearInterval(timer);
      // A node that does not answer keeps the lock until the lease runs out: bounded, and never a throw here.
      await shell.exec(node, releaseLockScript(path, owner), { timeoutMs: 15_000 }).catch(() => undefined);
    })());
  return {
    path,
    owner,
    get lost() {
      return lost;
    },
    renew,
    release,
  };
}
