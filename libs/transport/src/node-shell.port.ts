import type { NodeTarget } from '@spotlift/domain';
import type { Readable, Writable } from 'node:stream';

export interface CommandResult {
  /** Exit code; null when the command was ended by a signal or the channel broke. */
  code: number | null;
  signal?: string;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Abort the command (the channel is closed and the remote command gets SIGHUP) after this long. */
  timeoutMs?: number;
  /** Written to the command's stdin, then stdin is closed. */
  stdin?: string | Buffer;
}

/** A command running on a node with its streams open, for piping data between nodes. */
export interface RemoteProcess {
  stdin: Writable;
  stdout: Readable;
  /** Resolves when the command ends, with what it wrote to stderr (stdout is the caller's to read). */
  done: Promise<{ code: number | null; signal?: string; stderr: string }>;
}

/**
 * Runs shell commands on nodes. The adapter keeps one authenticated connection per node, so a command
 * inside a freeze window costs a channel open, never a new connection or DNS look-up.
 */
export abstract class NodeShell {
  abstract exec(node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult>;
  abstract spawn(node: NodeTarget, command: string): Promise<RemoteProcess>;
  /** Opens (or checks) the connection ahead of time. Throws NodeUnreachableError / HostKeyMismatchError. */
  abstract connect(node: NodeTarget): Promise<void>;
  abstract close(): Promise<void>;
}
