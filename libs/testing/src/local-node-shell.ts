import { execFile } from 'node:child_process';
import type { NodeTarget } from '@spotlift/domain';
import { type CommandResult, type ExecOptions, NodeShell, type RemoteProcess } from '@spotlift/transport';

/**
 * A NodeShell that runs every node's commands on this machine with `sh` (real commands, real processes): for
 * int tests of node scripts where every "node" shares this kernel and file system, as the lab's nodes do.
 */
export class LocalNodeShell extends NodeShell {
  exec(_node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    return new Promise((resolve) => {
      const child = execFile('sh', ['-c', command], { timeout: opts?.timeoutMs ?? 30_000 }, (error, stdout, stderr) =>
        resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
      child.stdin?.on('error', () => undefined); // a command that reads nothing may exit first
      child.stdin?.end(opts?.stdin === undefined ? '' : String(opts.stdin));
    });
  }

  spawn(): Promise<RemoteProcess> {
    return Promise.reject(new Error('LocalNodeShell runs commands with exec only'));
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
