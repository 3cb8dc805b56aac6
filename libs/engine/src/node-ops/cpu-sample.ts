/**
 * CPU use read on a node over SSH, for capacity rebalancing's `spread`: two readings of /proc/stat's aggregate
 * line and of each workload root's /proc/PID/stat, `seconds` apart. The node's busy CPUs are the non-idle share
 * of the jiffies that passed times its CPU count; a process's CPUs are its utime + stime jiffies over the same
 * interval (both files count USER_HZ ticks). Builder and parser are pure; NodeOps.cpuSample runs them.
 */
import { type NodeCommand, nodeCommand } from './node-command.js';

export interface CpuSample {
  cpuCount: number;
  /** CPUs busy over the interval (0..cpuCount). */
  busyCpus: number;
  /** CPUs each pid kept busy over the interval; a pid gone in either reading is left out. */
  pids: Record<number, number>;
}

/** Prints `@@`, the aggregate `cpu` line, the CPU count and `P <pid> <stat line>` per pid; twice, `seconds` apart. */
export function cpuSampleCommand(pids: readonly number[], seconds = 1): NodeCommand {
  const list = pids.filter((p) => Number.isInteger(p) && p > 0).join(' ');
  const each = list ? ` for p in ${list}; do echo "P $p $(cat /proc/$p/stat 2>/dev/null)"; done;` : '';
  return nodeCommand(
    `s() { echo @@; head -n 1 /proc/stat; grep -c '^cpu[0-9]' /proc/stat;${each} }; s; sleep ${seconds}; s`,
  );
}

interface Reading {
  total: number;
  idle: number;
  cpus: number;
  pids: Map<number, number>;
}

function reading(chunk: string): Reading | undefined {
  const lines = chunk.split('\n').map((l) => l.trim());
  const agg = lines.find((l) => /^cpu\s/.test(l));
  const cpus = Number(lines.find((l) => /^\d+$/.test(l)));
  if (!agg || !(cpus > 0)) return undefined;
  // user nice system idle iowait irq softirq steal (guest time is already inside user and nice)
  const f = agg.split(/\s+/).slice(1, 9).map(Number);
  if (f.length < 4 || f.some((x) => !Number.isFinite(x))) return undefined;
  const total = f.reduce((s, x) => s + x, 0);
  const idle = f[3]! + (f[4] ?? 0);
  const pids = new Map<number, number>();
  for (const l of lines) {
    const m = /^P (\d+) (.*)$/.exec(l);
    // The command name may hold spaces and parentheses: fields are counted after its last ')'.
    const rest = m?.[2]
      ?.slice(m[2].lastIndexOf(')') + 1)
      .trim()
      .split(/\s+/);
    const ticks = rest ? Number(rest[11]) + Number(rest[12]) : NaN;
    if (m && Number.isFinite(ticks)) pids.set(Number(m[1]), ticks);
  }
  return { total, idle, cpus, pids };
}

/** The sample from the command's output, or undefined when it makes no sense (two readings, time passed). */
export function parseCpuSample(output: string): CpuSample | undefined {
  const [a, b] = output
    .split(/^@@$/m)
    .slice(1)
    .map((c) => reading(c));
  if (!a || !b) return undefined;
  const dt = b.total - a.total;
  if (!(dt > 0)) return undefined;
  const cpuCount = b.cpus;
  const busy = Math.min(1, Math.max(0, 1 - (b.idle - a.idle) / dt));
  const pids: Record<number, number> = {};
  for (const [pid, t1] of b.pids) {
    const t0 = a.pids.get(pid);
    if (t0 !== undefined && t1 >= t0) pids[pid] = Math.min(cpuCount, ((t1 - t0) / dt) * cpuCount);
  }
  return { cpuCount, busyCpus: busy * cpuCount, pids };
}
