import { existsSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root: the nearest ancestor of this file that holds scripts/lab/nodes.sh (works from src and dist). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'scripts', 'lab', 'nodes.sh'))) return dir;
    const parent = dirname(dir);
    if (parent === dir)
      throw new Error('lab: cannot find scripts/lab/nodes.sh above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** The lab's state directory: $SPOTLIFT_LAB_DIR or <repo>/.lab (what the scripts use). */
export function labDir(): string {
  const env = process.env.SPOTLIFT_LAB_DIR;
  if (env) return isAbsolute(env) ? env : resolve(env);
  return join(repoRoot(), '.lab');
}

/** The one authorized_keys file every lab sshd reads (AuthorizedKeysFile in scripts/lab/nodes.sh). */
export function labAuthorizedKeys(): string {
  return join(labDir(), 'ssh', 'authorized_keys');
}

export function labScript(name: string): string {
  return join(repoRoot(), 'scripts', 'lab', name);
}

/** The host's address on the lab bridge (heartbeat collectors bind here). */
export const LAB_HOST_ADDRESS = '10.77.0.1';

/** node-a -> 10.77.0.2, node-b -> 10.77.0.3, ... */
export function nodeAddress(nodeId: string): string {
  const m = /^node-([a-t])$/.exec(nodeId);
  if (!m) throw new Error(`lab: not a lab node id: ${nodeId}`);
  return `10.77.0.${m[1]!.charCodeAt(0) - 97 + 2}`;
}

/** Path of a node's network namespace file (its inode identifies the namespace). */
export function netnsPath(nodeId: string): string {
  nodeAddress(nodeId); // validates
  return `/run/netns/spl-${nodeId}`;
}

/** The directory node NODE sees at /srv/data (its own mount namespace bind-mounts it there). */
export function nodeDataDir(nodeId: string): string {
  nodeAddress(nodeId); // validates
  return join(labDir(), 'nodes', nodeId, 'data');
}
