import { readFileSync } from 'node:fs';
import { runLabScript } from './exec.js';
import { LAB_HOST_ADDRESS } from './paths.js';

export interface WorkloadOptions {
  /** Heartbeat name; also names its log files under <labdir>/workloads/. */
  name: string;
  memMiB: number;
  /** Part rewritten every tick; default min(16, memMiB). */
  hotMiB?: number;
  /** UDP port of the heartbeat collector. */
  udpPort: number;
  /** Collector address; default the host's bridge address 10.77.0.1. */
  udpHost?: string;
  intervalMs?: number;
  /** Files (paths as the node sees them) the workload appends a line to every tick and keeps checking. */
  dataFiles?: string[];
  /** A file it writes, keeps open and unlinks (CRIU's ghost files), and its size in KiB. */
  ghostFile?: string;
  ghostKiB?: number;
  /** Working directory (must exist on the node). */
  cwd?: string;
  /** Also hold a TCP listener on 0.0.0.0:port in the node's network namespace. */
  tcpListen?: number;
}

/**
 * Starts scripts/lab/workload.py on a lab node, as the init of its own pid namespace in its own session,
 * and returns its host pid (the pid to dump).
 */
export async function startWorkload(nodeId: string, opts: WorkloadOptions): Promise<number> {
  const args = ['start', nodeId, opts.name, '--mem-mib', String(opts.memMiB)];
  args.push('--udp', `${opts.udpHost ?? LAB_HOST_ADDRESS}:${opts.udpPort}`);
  if (opts.hotMiB !== undefined) args.push('--hot-mib', String(opts.hotMiB));
  if (opts.intervalMs !== undefined) args.push('--interval-ms', String(opts.intervalMs));
  for (const f of opts.dataFiles ?? []) args.push('--data-file', f);
  if (opts.ghostFile) args.push('--ghost-file', opts.ghostFile);
  if (opts.ghostKiB !== undefined) args.push('--ghost-kib', String(opts.ghostKiB));
  if (opts.cwd) args.push('--cwd', opts.cwd);
  if (opts.tcpListen !== undefined) args.push('--tcp-listen', String(opts.tcpListen));
  const { stdout } = await runLabScript('workload.sh', args, 120_000);
  const pid = Number(stdout.trim().split('\n').pop());
  if (!Number.isInteger(pid) || pid <= 0) throw new Error(`lab: workload.sh printed no pid: ${stdout}`);
  return pid;
}

/** Kills a workload's whole tree (also a frozen one). A no-op if it is gone. */
export async function stopWorkload(pid: number): Promise<void> {
  await runLabScript('workload.sh', ['stop', String(pid)], 30_000);
}

/** True if PID exists and is not a zombie. */
export function pidAlive(pid: number): boolean {
  try {
    const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return state !== undefined && state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** Pids of PID in each pid namespace, outermost (host) first, from /proc/PID/status NSpid. */
export function nsPids(pid: number): number[] {
  const line = /^NSpid:\s+(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
  return line.split(/\s+/).filter(Boolean).map(Number);
}
