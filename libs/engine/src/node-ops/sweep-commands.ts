import { shq } from '@spotlift/transport';
import { OWNER_MARKER_FILE } from '../sweeper/owner-marker.js';
import { parseIdentities } from '../process-inspection.js';
import { identityLines } from './identity-script.js';
import { type NodeCommand, nodeCommand } from './node-command.js';

/**
 * The sweeper's node commands (POSIX sh, GNU or busybox tools) and the parsers of their one-line-per-fact
 * answers. Everything printed comes from a node, so the parsers accept only the shapes the commands print.
 */

/** A directory name the engine could have made (a migration or checkpoint id); never `.` or `..` (it is removed). */
const DIR_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;

/**
 * Lists `<root>/*`: `DIR name mtime`, `MARK name src|dst base64(marker)`, `RESTORED name pid` (CRIU's
 * restored.pid on the destination side) and `CRIU pid cmdline` for every CRIU process (its directory is in
 * its command line). A missing root prints nothing: nothing was ever left there.
 */
export function listImageDirs(root: string): NodeCommand {
  return nodeCommand(
    [
      `r=${shq(root)}`,
      `if [ -d "$r" ]; then for d in "$r"/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); ` +
        `echo "DIR $n $(stat -c %Y "$d" 2>/dev/null)"; ` +
        `for s in src dst; do f="$d$s/${OWNER_MARKER_FILE}"; [ -f "$f" ] && echo "MARK $n $s $(head -c 4096 "$f" | base64 | tr -d '\\n')"; done; ` +
        `p=$(cat "$d/dst/restored.pid" 2>/dev/null); case "$p" in ''|*[!0-9]*) ;; *) echo "RESTORED $n $p" ;; esac; done; fi`,
      `for p in /proc/[0-9]*; do n=; read -r n 2>/dev/null < "$p/comm"; [ "$n" = criu ] || continue; ` +
        `echo "CRIU \${p#/proc/} $(tr '\\0' ' ' < "$p/cmdline" 2>/dev/null)"; done`,
      'true',
    ].join('\n'),
  );
}

export interface ListedDir {
  name: string;
  mtimeMs?: number;
  /** Marker text per side, as found (parsed by the caller). */
  markers: { src?: string; dst?: string };
  restoredPid?: number;
  /** CRIU processes whose command line names this directory. */
  criuPids: number[];
}

export function parseImageDirs(stdout: string, root: string): ListedDir[] {
  const dirs = new Map<string, ListedDir>();
  const criu: Array<{ pid: number; cmd: string }> = [];
  const dir = (name: string) => {
    let d = dirs.get(name);
    if (!d) dirs.set(name, (d = { name, markers: {}, criuPids: [] }));
    return d;
  };
  for (const line of stdout.split('\n')) {
    const [tag, a = '', b = '', c = ''] = line.trim().split(' ');
    if (tag === 'CRIU' && /^\d+$/.test(a)) criu.push({ pid: Number(a), cmd: line.slice(6 + a.length) });
    if (!DIR_NAME.test(a)) continue;
    if (tag === 'DIR') {
      const d = dir(a);
      if (/^\d{1,12}$/.test(b)) d.mtimeMs = Number(b) * 1000;
    } else if (tag === 'MARK' && (b === 'src' || b === 'dst') && /^[A-Za-z0-9+/=]{1,6000}$/.test(c)) {
      dir(a).markers[b] = Buffer.from(c, 'base64').toString('utf8');
    } else if (tag === 'RESTORED' && /^\d{1,8}$/.test(b)) {
      dir(a).restoredPid = Number(b);
    }
  }
  for (const d of dirs.values())
    d.criuPids = criu.filter((p) => p.cmd.includes(`${root}/${d.name}/`)).map((p) => p.pid);
  return [...dirs.values()];
}

/**
 * Facts about processes and lock files: the identity lines (identity-script.ts, the same as registration's
 * inspectTree prints) and `LOCK file held|free|none` (`none`: no such file, or no flock on the node, in which
 * case no job can hold one either). `flock -n` on a free lock takes and drops it at once.
 */
export function processFacts(pids: readonly number[], lockFiles: readonly string[]): NodeCommand {
  const lines = identityLines(pids);
  for (const f of lockFiles) {
    const q = shq(f);
    lines.push(
      `if [ ! -e ${q} ] || ! command -v flock >/dev/null; then echo "LOCK ${q} none"; ` +
        `elif flock -n ${q} true; then echo "LOCK ${q} free"; else echo "LOCK ${q} held"; fi`,
    );
  }
  lines.push('true');
  return nodeCommand(lines.join('\n'));
}

export interface ProcFact {
  pid: number;
  state: string;
  startTime: string;
  pidNs: string;
  cmdline: string;
}

export interface NodeFacts {
  bootId: string;
  procs: Map<number, ProcFact>;
  locks: Map<string, 'held' | 'free' | 'none'>;
}

export function parseProcessFacts(stdout: string): NodeFacts {
  const { bootId, procs } = parseIdentities(stdout);
  const facts: NodeFacts = { bootId, procs: new Map(), locks: new Map() };
  for (const [pid, p] of procs)
    facts.procs.set(pid, { pid, state: p.stat.state, startTime: p.stat.startTime, pidNs: p.pidNs, cmdline: p.cmdline });
  for (const line of stdout.split('\n')) {
    const parts = line.trim().split(' ');
    if (parts[0] === 'LOCK' && ['held', 'free', 'none'].includes(parts[2] ?? ''))
      facts.locks.set(parts[1]!.replace(/^'|'$/g, ''), parts[2] as 'held' | 'free' | 'none');
  }
  return facts;
}

/**
 * A dead post-copy trial's leftovers on this node (sweeper/trial-leftovers.ts): kills every CRIU process whose
 * command line names `<root>/<name>/` (the lazy dump's page server, the lazy-pages daemon, a restore), then,
 * once those let go of their tasks, every process whose comm is exactly `name` (the trial's probe, stopped or
 * restored; with its children, the probe's sleep), then removes the directory. Prints `KILLED <pid> criu|probe`
 * lines and `REMOVED`. `name` is checked here too: it goes into a shell pattern.
 */
export function cleanTrial(root: string, name: string): NodeCommand {
  if (!/^trial-[0-9a-f]{8}$/.test(name)) throw new Error(`not a trial directory: ${name}`);
  return nodeCommand(
    [
      `d=${shq(`${root}/${name}`)}`,
      `for p in /proc/[0-9]*; do c=; read -r c 2>/dev/null < "$p/comm"; [ "$c" = criu ] || continue; ` +
        `case "$(tr '\\0' ' ' < "$p/cmdline" 2>/dev/null)" in *"$d/"*) kill -KILL "\${p#/proc/}" 2>/dev/null && echo "KILLED \${p#/proc/} criu" ;; esac; done`,
      'sleep 0.2',
      `for p in /proc/[0-9]*; do c=; read -r c 2>/dev/null < "$p/comm"; [ "$c" = ${name} ] || continue; ` +
        `k=$(cat "$p"/task/*/children 2>/dev/null); kill -KILL "\${p#/proc/}" $k 2>/dev/null && echo "KILLED \${p#/proc/} probe"; done`,
      'rm -rf -- "$d"; [ -e "$d" ] || echo REMOVED',
      'true',
    ].join('\n'),
  );
}

export interface TrialCleanup {
  killed: Array<{ pid: number; what: 'criu' | 'probe' }>;
  removed: boolean;
}

export function parseTrialCleanup(stdout: string): TrialCleanup {
  const killed: TrialCleanup['killed'] = [];
  for (const line of stdout.split('\n')) {
    const m = /^KILLED (\d{1,8}) (criu|probe)$/.exec(line.trim());
    if (m) killed.push({ pid: Number(m[1]), what: m[2] as 'criu' | 'probe' });
  }
  return { killed, removed: /^REMOVED$/m.test(stdout) };
}
