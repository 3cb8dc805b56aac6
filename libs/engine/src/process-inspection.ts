import { type ProcessIdentity, processKey, type WorkloadRecord } from '@spotlift/domain';

/**
 * What the node said about a tree's root process, read in the same command as the tree (node-scripts
 * inspectTree), and the decisions made from it: which process a pid is (its identity), and whether it may be
 * registered at all. Pure: parsing and rules only.
 */
export interface RootProcess {
  identity: ProcessIdentity;
  /** From /proc/<pid>/stat; may hold spaces and ')' (a process names itself). */
  comm: string;
  /** The state letter (R, S, T, Z, ...). */
  state: string;
  ppid: number;
  /** Field 9 of /proc/<pid>/stat (PF_* bits). */
  flags: number;
  /** /proc/<pid>/exe resolves: kernel threads have none (nor have zombies). */
  hasExe: boolean;
  /** Network namespace inodes of the process and of the SSH session that looked at it. */
  netNs: string;
  sessionNetNs: string;
  /** The session's shell and every ancestor of it up to pid 1: the node's sshd among them. */
  sessionPids: number[];
}

/** PF_KTHREAD in include/linux/sched.h: set on every kernel thread, whatever its parent. */
export const PF_KTHREAD = 0x0020_0000;

export interface ProcStat {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  flags: number;
  /** Field 22: clock ticks after boot. Kept as text: it is an identity, never computed with. */
  startTime: string;
}

/**
 * Parses one /proc/<pid>/stat line. The comm field is in parentheses and may itself contain spaces and
 * parentheses, so the fields are counted after the *last* ')' (as procps does); field 3 comes first there.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  const pid = Number(text.slice(0, open).trim());
  const rest = text
    .slice(close + 1)
    .trim()
    .split(/\s+/);
  // rest[0] is field 3 (state): field N is rest[N - 3].
  const [state, ppid, flags, startTime] = [rest[0], rest[1], rest[6], rest[19]];
  if (!Number.isInteger(pid) || !state || !/^\d+$/.test(ppid ?? '') || !/^\d+$/.test(flags ?? '')) return undefined;
  if (!/^\d+$/.test(startTime ?? '')) return undefined;
  return {
    pid,
    comm: text.slice(open + 1, close),
    state,
    ppid: Number(ppid),
    flags: Number(flags),
    startTime: startTime!,
  };
}

export interface ProcIdentity {
  stat: ProcStat;
  /** Inode of the process's pid namespace (digits; '' when it could not be read). */
  pidNs: string;
  /** cksum of /proc/pid/cmdline, as printed. */
  cmdline: string;
}

export interface Identities {
  /** '' when the node did not say (or said something else). */
  bootId: string;
  procs: Map<number, ProcIdentity>;
}

/**
 * Reads what node-ops identityLines printed, ignoring every other line. A PROC line counts only when its stat line
 * parses and names the pid it was printed for: anything else is not that process.
 */
export function parseIdentities(stdout: string): Identities {
  const out: Identities = { bootId: '', procs: new Map() };
  for (const line of stdout.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts[0] === 'BOOT' && /^[0-9a-f-]{1,64}$/i.test(parts[1] ?? '')) out.bootId = parts[1]!;
    if (parts[0] === 'PROC' && /^\d+$/.test(parts[1] ?? '') && /^[A-Za-z0-9+/=]{1,4000}$/.test(parts[2] ?? '')) {
      const [, pid, statB64 = '', pidNs = '', cmdline = ''] = parts;
      const stat = parseProcStat(Buffer.from(statB64, 'base64').toString('utf8'));
      if (stat?.pid === Number(pid) && /^[A-Za-z]$/.test(stat.state) && /^\d{0,20}$/.test(pidNs)) {
        out.procs.set(stat.pid, { stat, pidNs, cmdline });
      }
    }
  }
  return out;
}

/** `pid:[4026531836]` (readlink of /proc/<pid>/ns/X) -> `4026531836`; undefined for anything else. */
function nsInode(link: string | undefined): string | undefined {
  return /^[a-z_]+:\[(\d+)\]$/.exec(link?.trim() ?? '')?.[1];
}

function line(stdout: string, tag: string): string | undefined {
  const m = new RegExp(`^${tag}(?: (.*))?$`, 'm').exec(stdout);
  return m ? (m[1] ?? '') : undefined;
}

/**
 * The root's facts from inspectTree's output: its identity lines (`BOOT`, `PROC`, see parseIdentities) and
 * `NET_NS`, `SESSION_NET_NS`, `EXE`, `SESSION`. Undefined when any of them is missing or malformed (the process
 * exited while it was read, or a node that printed only the tree). `pid` picks the root's PROC line (default:
 * the only one inspectTree prints).
 */
export function parseRootProcess(stdout: string, pid?: number): RootProcess | undefined {
  const { bootId, procs } = parseIdentities(stdout);
  const proc = pid === undefined ? (procs.size === 1 ? [...procs.values()][0] : undefined) : procs.get(pid);
  const netNs = nsInode(line(stdout, 'NET_NS'));
  const sessionNetNs = nsInode(line(stdout, 'SESSION_NET_NS'));
  if (!/^[0-9a-f-]{8,64}$/i.test(bootId) || !proc || !/^\d+$/.test(proc.pidNs) || !netNs || !sessionNetNs)
    return undefined;
  const { stat } = proc;
  const sessionPids = (line(stdout, 'SESSION') ?? '')
    .split(/\s+/)
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
  return {
    identity: { bootId, pidNs: proc.pidNs, startTime: stat.startTime },
    comm: stat.comm,
    state: stat.state,
    ppid: stat.ppid,
    flags: stat.flags,
    hasExe: line(stdout, 'EXE')?.trim() === 'yes',
    netNs,
    sessionNetNs,
    sessionPids,
  };
}

/**
 * Kernel threads: PF_KTHREAD, or kthreadd (pid 2) and its children (ppid 2) without an executable. Pid 2
 * alone proves nothing: in a container's pid namespace it is an ordinary process.
 */
export function isKernelThread(pid: number, root: Pick<RootProcess, 'flags' | 'ppid' | 'hasExe'>): boolean {
  return (root.flags & PF_KTHREAD) !== 0 || ((pid === 2 || root.ppid === 2) && !root.hasExe);
}

export function initRefusal(nodeId: string): string {
  return `pid 1 is the init of node '${nodeId}': its tree is every process there, spotlift's own SSH session included`;
}

/**
 * Why a tree must not be registered as a workload, or undefined. Each answer says what the process is and
 * why spotlift refuses it; the checks never depend on what the caller claims, only on what the node showed.
 */
export function registrationRefusal(
  nodeId: string,
  pid: number,
  root: RootProcess,
  tree: readonly number[],
): string | undefined {
  const name = `pid ${pid} (${JSON.stringify(root.comm)})`;
  if (pid === 1) return initRefusal(nodeId);
  if (isKernelThread(pid, root))
    return `${name} on node '${nodeId}' is a kernel thread: only user processes can be checkpointed`;
  if (root.state === 'Z' || !root.hasExe)
    return `${name} on node '${nodeId}' has no executable spotlift can see (a zombie, an exiting process, or one its SSH user may not inspect)`;
  if (root.netNs !== root.sessionNetNs) {
    return (
      `${name} is not in node '${nodeId}''s network namespace (net:[${root.netNs}], the node's SSH session is in net:[${root.sessionNetNs}]): ` +
      `it is seen from another node sharing this kernel, or runs in its own network namespace; register it on the node it runs in`
    );
  }
  const session = new Set(root.sessionPids);
  const carried = tree.find((p) => session.has(p));
  if (carried !== undefined) {
    return (
      `the tree of ${name} on node '${nodeId}' holds pid ${carried}, which carries spotlift's own SSH session there ` +
      `(the node's sshd or one of its sessions): moving or freezing it would cut the orchestrator off the node`
    );
  }
  return undefined;
}

/**
 * Why the process now at the workload's pid is not the one that was registered, or undefined. Records without
 * an identity (from before identities were read), or a node that did not show one, cannot be compared.
 */
export function identityMismatch(
  workload: { nodeId: string; pid: number; identity?: ProcessIdentity },
  seen: ProcessIdentity | undefined,
): string | undefined {
  if (!workload.identity || !seen) return undefined;
  if (processKey(workload) === processKey({ ...workload, identity: seen })) return undefined;
  const was = workload.identity;
  if (was.bootId !== seen.bootId) return `node '${workload.nodeId}' rebooted since pid ${workload.pid} was registered`;
  return (
    `pid ${workload.pid} on node '${workload.nodeId}' is another process now (started at tick ${seen.startTime} ` +
    `in pid namespace ${seen.pidNs}; the registered one at tick ${was.startTime} in ${was.pidNs}): the workload exited and its pid was reused`
  );
}

/** The workload is the restored process from now on; without its identity it falls back to node and pid. */
export function setIdentity(workload: WorkloadRecord, identity: ProcessIdentity | undefined): void {
  if (identity) workload.identity = identity;
  else delete workload.identity;
}
