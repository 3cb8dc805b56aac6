import { DomainError, type NodeTarget } from '@spotlift/domain';
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
  /**
   * Most bytes of stdout the command may return (default {@link DEFAULT_MAX_STDOUT_BYTES}). Past it the
   * command is killed, its channel closed, and exec rejects with OutputLimitError: a node printing without
   * end must not fill the orchestrator's memory. Commands that legitimately print more pass their own.
   */
  maxOutputBytes?: number;
  /** The same for stderr (default {@link DEFAULT_MAX_STDERR_BYTES}). */
  maxStderrBytes?: number;
}

export interface SpawnOptions {
  /** Most stderr bytes kept (default {@link DEFAULT_MAX_STDERR_BYTES}); past it the command is killed. */
  maxStderrBytes?: number;
}

export const DEFAULT_MAX_STDOUT_BYTES = 8 << 20;
export const DEFAULT_MAX_STDERR_BYTES = 1 << 20;

/** A command wrote more than the caller agreed to take; it was killed. */
export class OutputLimitError extends DomainError {
  constructor(nodeId: string, stream: 'stdout' | 'stderr', limit: number) {
    super(
      'output_limit',
      `a command on node '${nodeId}' wrote more than ${limit} bytes to ${stream}; it was killed (output cap)`,
      { nodeId, stream, limit },
    );
  }
}

/** A command running on a node with its streams open, for piping data between nodes. */
export interface RemoteProcess {
  stdin: Writable;
  stdout: Readable;
  /** Resolves when the command ends, with what it wrote to stderr (stdout is the caller's to read). */
  done: Promise<{ code: number | null; signal?: string; stderr: string }>;
}

/**
 * A TCP port on a source node whose connections are relayed, through the orchestrator's SSH connections,
 * to a port on the destination's loopback (see ssh-relay.ts for the design).
 */
export interface PortRelay {
  /** Where programs on the source connect (on the source's 127.0.0.1). */
  sourcePort: number;
  /** Bytes relayed from source to destination so far. */
  bytes(): number;
  /** Bytes relayed back from destination to source so far. */
  bytesBack(): number;
  /** Stops listening on the source and ends every relayed connection. Safe to call twice. */
  close(): Promise<void>;
}

/**
 * Runs shell commands on nodes. The adapter keeps one authenticated connection per node, so a command
 * inside a freeze window costs a channel open, never a new connection or DNS look-up.
 */
export abstract class NodeShell {
  abstract exec(node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult>;
  abstract spawn(node: NodeTarget, command: string, opts?: SpawnOptions): Promise<RemoteProcess>;
  /** Opens (or checks) the connection ahead of time. Throws NodeUnreachableError / HostKeyMismatchError. */
  abstract connect(node: NodeTarget): Promise<void>;
  abstract close(): Promise<void>;

  /**
   * Listens on 127.0.0.1:<port> on the source and relays each connection to 127.0.0.1:destPort on the
   * destination. Not abstract, so adapters that cannot relay (fakes) need not change.
   */
  relayPort(source: NodeTarget, destination: NodeTarget, destPort: number): Promise<PortRelay> {
    void source;
    void destination;
    void destPort;
    return Promise.reject(new Error(`${this.constructor.name} cannot relay ports`));
  }

  /**
   * The node's host key as `TYPE BASE64`, as this shell saw and verified it against the pin (which may be
   * a fingerprint only). Undefined when the adapter cannot tell.
   */
  verifiedHostKey(node: NodeTarget): Promise<string | undefined> {
    void node;
    return Promise.resolve(undefined);
  }
}
