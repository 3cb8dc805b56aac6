import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { runLabScript } from './exec.js';
import { labDir, netnsPath } from './paths.js';

/** One node of <labdir>/nodes.json (the orchestrator's node config file). */
export interface LabNode {
  id: string;
  name: string;
  host: string;
  port: number;
  user: string;
  /** Pinned host key: `ssh-ed25519 AAAA...` (no comment). */
  hostKey: string;
  dataAddress: string;
  zone: string;
  /** Absent on the on-demand node (node-c). */
  spotPool?: string;
  lifecycle: 'spot' | 'on-demand';
  labels: Record<string, string>;
}

/** <labdir>/nodes.json. */
export interface LabConfig {
  ssh: { privateKeyPath: string };
  nodes: LabNode[];
}

export function labConfigPath(): string {
  return join(labDir(), 'nodes.json');
}

/** Reads and checks <labdir>/nodes.json. */
export function readLabConfig(path = labConfigPath()): LabConfig {
  const raw: unknown = JSON.parse(readFileSync(path, 'utf8'));
  const cfg = raw as LabConfig;
  if (typeof cfg?.ssh?.privateKeyPath !== 'string' || !Array.isArray(cfg.nodes)) {
    throw new Error(`lab: ${path} is not a lab node config`);
  }
  for (const n of cfg.nodes) {
    if (typeof n.id !== 'string' || typeof n.host !== 'string' || !/^ssh-ed25519 \S+$/.test(n.hostKey)) {
      throw new Error(`lab: ${path} has a malformed node: ${JSON.stringify(n)}`);
    }
  }
  return cfg;
}

/**
 * Brings the lab up (scripts/lab/nodes.sh up N; default 3 nodes) and returns the parsed nodes.json.
 * A no-op for nodes that are already up and healthy; nodes beyond N that someone else brought up stay and
 * are listed too.
 */
export async function labUp(opts: { nodes?: number } = {}): Promise<LabConfig> {
  const n = opts.nodes ?? 3;
  await runLabScript('nodes.sh', ['up', String(n)], 180_000);
  return readLabConfig();
}

/**
 * Tears the whole lab down (every process in the nodes' namespaces, namespaces, veths, bridge). With
 * `ifIdle`, leaves it up while anyone uses it (an SSH session, a workload or criu in a node namespace).
 * Returns whether it went down.
 */
export async function labDown(opts: { ifIdle?: boolean } = {}): Promise<boolean> {
  const { stdout } = await runLabScript('nodes.sh', opts.ifIdle ? ['down', '--if-idle'] : ['down'], 120_000);
  return stdout.trim().split('\n').pop() === 'down';
}

/** True if the lab is up and every node passes `nodes.sh status` (bridge, netns, sshd, key login). */
export async function labIsHealthy(): Promise<boolean> {
  try {
    await runLabScript('nodes.sh', ['status'], 60_000);
    return true;
  } catch {
    return false;
  }
}

/** Inode of a network namespace file (`/proc/PID/ns/net` or `/run/netns/NAME`), or undefined if absent. */
export function netnsInode(path: string): number | undefined {
  try {
    return statSync(path).ino;
  } catch {
    return undefined;
  }
}

/** Lab node whose network namespace process PID lives in, or undefined (host or gone). */
export function nodeOfPid(pid: number, nodeIds: string[] = defaultNodeIds()): string | undefined {
  const ino = netnsInode(`/proc/${pid}/ns/net`);
  if (ino === undefined) return undefined;
  return nodeIds.find((id) => netnsInode(netnsPath(id)) === ino);
}

function defaultNodeIds(): string[] {
  return Array.from({ length: 20 }, (_, i) => `node-${String.fromCharCode(97 + i)}`);
}
