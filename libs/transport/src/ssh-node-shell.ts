import { Client, type ClientChannel } from 'ssh2';
import { DomainError, HostKeyMismatchError, NodeUnreachableError, type NodeTarget } from '@spotlift/domain';
import { ChannelSlots } from './channel-slots.js';
import { hostKeyFingerprint, hostKeyMatches } from './host-key.js';
import {
  DEFAULT_MAX_STDERR_BYTES,
  DEFAULT_MAX_STDOUT_BYTES,
  NodeShell,
  OutputLimitError,
  type CommandResult,
  type ExecOptions,
  type PortRelay,
  type RemoteProcess,
  type SpawnOptions,
} from './node-shell.port.js';
import { sshLocalConnector, sshRemoteListener, startRelay } from './ssh-relay.js';

export interface SshCredentials {
  privateKey: Buffer;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /**
   * Session channels (commands) open at once on one node's connection; the rest wait in line. Stock sshd
   * refuses channels past MaxSessions (10), so the default 8 leaves room; nodes need MaxSessions >= this.
   */
  maxChannelsPerNode?: number;
  /** How long a command waits in that line before it fails with NodeBusyError. */
  channelWaitMs?: number;
  /**
   * SSH handshakes in flight at once, over all nodes; later connects wait in line (FIFO) before they start,
   * so their handshake timeout runs from their own start. 1,000 nodes connected at once at boot timed out
   * by the tens of thousands (each handshake's crypto and the simulator's answers queued behind all others).
   */
  maxConcurrentConnects?: number;
}

export const DEFAULT_MAX_CHANNELS_PER_NODE = 8;
export const DEFAULT_MAX_CONCURRENT_CONNECTS = 32;
const DEFAULT_CHANNEL_WAIT_MS = 120_000;
const CHANNEL_REFUSED_RETRY_MS = 5_000;

/** Every channel of a node's connection stayed busy for as long as a command would wait for one. */
export class NodeBusyError extends DomainError {
  constructor(nodeId: string, limit: number, waitedMs: number) {
    super(
      'node_busy',
      `node '${nodeId}': all ${limit} SSH channels stayed busy for ${waitedMs} ms; the command was not run`,
      { nodeId, limit },
      true,
    );
  }
}

/**
 * The node's sshd refused a session channel on a live connection (its MaxSessions is below our limit), or
 * opened it and refused to start the command in it (an `exec` request answered with a failure: the server
 * could not fork or make its pipes; nothing ran).
 */
export class SshChannelRefusedError extends DomainError {
  constructor(nodeId: string, reason: string, limit: number, execRefused = false) {
    super(
      'ssh_channel_refused',
      execRefused
        ? `node '${nodeId}' refused to start a command in an SSH session channel (${reason}); its sshd could not start it (out of processes, memory or file descriptors?)`
        : `node '${nodeId}' refused an SSH session channel (${reason}); its sshd needs MaxSessions >= ${limit}`,
      { nodeId },
      true,
    );
  }
}

/**
 * ssh2's words for an exec request the server answered with a failure (or closed the channel before answering):
 * the command was not started, so it is as safe to ask again as a refused channel.
 */
function isExecRefused(error: Error): boolean {
  return /^unable to exec$/i.test(error.message);
}

interface Connection {
  client: Client;
  ready: Promise<Client>;
  slots: ChannelSlots;
  /** Why the connection went away, once it did; it is then out of the pool and closed. */
  lost?: string;
}

/** `TYPE BASE64` of an SSH public key blob (its first field is the type name). */
function keyLine(blob: Buffer): string {
  const typeLength = blob.readUInt32BE(0);
  return `${blob.subarray(4, 4 + typeLength).toString('latin1')} ${blob.toString('base64')}`;
}

/** One `exec` channel; rejects with ssh2's error (a refused open carries a numeric `reason`). */
function execChannel(client: Client, command: string): Promise<ClientChannel> {
  return new Promise((resolve, reject) => {
    try {
      client.exec(command, (error, channel) => (error ? reject(error) : resolve(channel)));
    } catch (error) {
      reject(error instanceof Error ? error : new Error(String(error)));
    }
  });
}

/** A malformed pin matches nothing (and must not throw inside ssh2's event handlers). */
function pinMatches(pin: string, presented: Buffer): boolean {
  try {
    return hostKeyMatches(pin, presented);
  } catch {
    return false;
  }
}

/** ssh2's words for a connection that is gone (as opposed to one channel refused on a live connection). */
function isConnectionGone(error: Error): boolean {
  return /not connected|no response from server/i.test(error.message);
}

/**
 * NodeShell over ssh2: one pooled connection per node (keyed by id, host, port and pin), host keys pinned,
 * at most `maxChannelsPerNode` commands open on it at once (FIFO queue for the rest).
 *
 * A peer may die, hang, reset or send garbage at any moment, and ssh2 may report one failure several times
 * ("Timed out while waiting for handshake", then "Connection lost before handshake"). So every client and
 * channel has an `error` listener for its whole life; the first failure closes the connection, takes it out
 * of the pool (the next call reconnects) and fails whatever waited on it with NodeUnreachableError.
 */
export class SshNodeShell extends NodeShell {
  private readonly connections = new Map<string, Connection>();
  /** Host keys nodes presented and their pins accepted, as `TYPE BASE64` (a pin may be a fingerprint). */
  private readonly verifiedKeys = new Map<string, string>();
  private readonly channelLimit: number;
  /** Handshakes in flight (the same FIFO semaphore as a connection's channels, over every node). */
  private readonly connectSlots: ChannelSlots;

  constructor(private readonly credentials: SshCredentials) {
    super();
    this.channelLimit = credentials.maxChannelsPerNode ?? DEFAULT_MAX_CHANNELS_PER_NODE;
    this.connectSlots = new ChannelSlots(credentials.maxConcurrentConnects ?? DEFAULT_MAX_CONCURRENT_CONNECTS);
  }

  override async connect(node: NodeTarget): Promise<void> {
    await this.connection(node).ready;
  }

  override async exec(node: NodeTarget, command: string, opts: ExecOptions = {}): Promise<CommandResult> {
    const channel = await this.openChannel(node, command);
    const maxOut = opts.maxOutputBytes ?? DEFAULT_MAX_STDOUT_BYTES;
    const maxErr = opts.maxStderrBytes ?? DEFAULT_MAX_STDERR_BYTES;
    return new Promise<CommandResult>((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outBytes = 0;
      let errBytes = 0;
      let capped: OutputLimitError | undefined;
      let timer: NodeJS.Timeout | undefined;
      const kill = () => {
        channel.signal('KILL');
        channel.close();
      };
      // Past the cap nothing more is kept: what arrives until the close is acknowledged is dropped.
      const cap = (stream: 'stdout' | 'stderr', limit: number) => {
        capped ??= new OutputLimitError(node.id, stream, limit);
        out.length = 0;
        err.length = 0;
        kill();
      };
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          err.push(Buffer.from(`\n[spotlift] command timed out after ${opts.timeoutMs} ms\n`));
          kill();
        }, opts.timeoutMs);
      }
      channel.on('data', (d: Buffer) => {
        if (capped) return;
        outBytes += d.length;
        if (outBytes > maxOut) cap('stdout', maxOut);
        else out.push(d);
      });
      channel.stderr.on('data', (d: Buffer) => {
        if (capped) return;
        errBytes += d.length;
        if (errBytes > maxErr) cap('stderr', maxErr);
        else err.push(d);
      });
      channel.on('error', (e: Error) => {
        err.push(Buffer.from(`\n[spotlift] channel error: ${e.message}\n`));
        channel.close();
      });
      channel.on('close', (code: number | null, signal?: string) => {
        if (timer) clearTimeout(timer);
        if (capped) {
          reject(capped);
          return;
        }
        resolve({
          code: typeof code === 'number' ? code : null,
          ...(signal ? { signal } : {}),
          stdout: Buffer.concat(out).toString('utf8'),
          stderr: Buffer.concat(err).toString('utf8'),
        });
      });
      if (opts.stdin !== undefined) channel.end(opts.stdin);
      else channel.end();
    });
  }

  override async spawn(node: NodeTarget, command: string, opts: SpawnOptions = {}): Promise<RemoteProcess> {
    const channel = await this.openChannel(node, command);
    const maxErr = opts.maxStderrBytes ?? DEFAULT_MAX_STDERR_BYTES;
    const err: Buffer[] = [];
    let errBytes = 0;
    let capped = false;
    channel.stderr.on('data', (d: Buffer) => {
      if (capped) return;
      errBytes += d.length;
      if (errBytes <= maxErr) {
        err.push(d);
        return;
      }
      // The caller reads the exit status: a killed command fails, and its stderr says why.
      capped = true;
      err.push(Buffer.from(`\n[spotlift] stderr passed ${maxErr} bytes (output cap); the command was killed\n`));
      channel.signal('KILL');
      channel.close();
    });
    // The caller pipes stdin/stdout and may not listen for errors on them; a broken channel ends as a close.
    channel.on('error', (e: Error) => {
      if (!capped) err.push(Buffer.from(`\n[spotlift] channel error: ${e.message}\n`));
      channel.close();
    });
    const done = new Promise<{ code: number | null; signal?: string; stderr: string }>((resolve) => {
      channel.on('close', (code: number | null, signal?: string) =>
        resolve({
          code: typeof code === 'number' ? code : null,
          ...(signal ? { signal } : capped ? { signal: 'KILL' } : {}),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    });
    return { stdin: channel, stdout: channel, done };
  }

  /** Page traffic through SSH: see ssh-relay.ts for the design. */
  override async relayPort(source: NodeTarget, destination: NodeTarget, destPort: number): Promise<PortRelay> {
    const [src, dst] = await Promise.all([this.connection(source).ready, this.connection(destination).ready]);
    return startRelay(sshRemoteListener(src), sshLocalConnector(dst), destPort);
  }

  override async verifiedHostKey(node: NodeTarget): Promise<string | undefined> {
    await this.connection(node).ready;
    return this.verifiedKeys.get(this.key(node));
  }

  override async close(): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    for (const conn of all) {
      conn.lost ??= 'the shell was closed';
      conn.slots.failAll(new Error(conn.lost));
      conn.client.end();
    }
    return Promise.resolve();
  }

  /** Open connections, for tests and metrics. */
  get openConnections(): number {
    return this.connections.size;
  }

  /** Handshakes in flight, and connects waiting for one of the `maxConcurrentConnects` slots. */
  get connecting(): { inFlight: number; queued: number } {
    return { inFlight: this.connectSlots.inUse, queued: this.connectSlots.queued };
  }

  private async openChannel(node: NodeTarget, command: string): Promise<ClientChannel> {
    const conn = this.connection(node);
    const client = await conn.ready;
    const waitMs = this.credentials.channelWaitMs ?? DEFAULT_CHANNEL_WAIT_MS;
    const release = await conn.slots.acquire(AbortSignal.timeout(waitMs)).catch((error: unknown) => {
      if (conn.lost) throw new NodeUnreachableError(node.id, conn.lost);
      if (error instanceof Error && error.name === 'TimeoutError') {
        throw new NodeBusyError(node.id, this.channelLimit, waitMs);
      }
      throw error;
    });
    // sshd frees a session only after its main loop has collected the closed channel: a new channel opened
    // right after others closed (the queue moving on) may be refused for a moment. A server short of processes
    // or memory for a moment (the qemu lab's dropbear under TCG, once, at a commit) refuses the exec request
    // instead; the command did not start. Refusals on a live connection are retried for a few seconds before
    // they count.
    const giveUpAt = Date.now() + CHANNEL_REFUSED_RETRY_MS;
    for (let attempt = 1; ; attempt++) {
      try {
        const channel = await execChannel(client, command);
        channel.once('close', release);
        // Present from the start: an error before the caller attaches its handlers must not be unhandled.
        channel.on('error', () => undefined);
        channel.stderr.on('error', () => undefined);
        return channel;
      } catch (e) {
        const error = e instanceof Error ? e : new Error(String(e));
        if (conn.lost || isConnectionGone(error)) {
          release();
          // The connection itself broke (no answer, not connected): close it so the next call reconnects.
          this.drop(node, conn, error.message);
          throw new NodeUnreachableError(node.id, conn.lost ?? error.message);
        }
        const execRefused = isExecRefused(error);
        if (!('reason' in error || execRefused) || Date.now() >= giveUpAt) {
          release();
          throw new SshChannelRefusedError(node.id, error.message, this.channelLimit, execRefused);
        }
        await new Promise((r) => setTimeout(r, Math.min(20 * 2 ** attempt, 500)));
      }
    }
  }

  private key(node: NodeTarget): string {
    return `${node.id}|${node.host}|${node.port}|${node.hostKey}`;
  }

  /** Closes a connection that failed, and forgets it; what waits on it fails. Safe to call repeatedly. */
  private drop(node: NodeTarget, conn: Connection, why: string): void {
    if (conn.lost) return;
    conn.lost = why;
    const key = this.key(node);
    if (this.connections.get(key) === conn) this.connections.delete(key);
    conn.slots.failAll(new NodeUnreachableError(node.id, why));
    conn.client.end();
    conn.client.destroy();
  }

  private connection(node: NodeTarget): Connection {
    const key = this.key(node);
    const existing = this.connections.get(key);
    if (existing) return existing;

    const client = new Client();
    let presented: Buffer | undefined;
    let settled = false;
    let settle!: { resolve: (c: Client) => void; reject: (e: Error) => void };
    const ready = new Promise<Client>((resolve, reject) => (settle = { resolve, reject }));
    // Whoever called awaits `ready`; this only keeps a failure nobody waits for from being "unhandled".
    ready.catch(() => undefined);
    const conn: Connection = { client, ready, slots: new ChannelSlots(this.channelLimit) };
    // The handshake's slot, held from connect to ready or failure (released once: ChannelSlots' release is).
    let releaseSlot = () => {};
    const fail = (why: string) => {
      releaseSlot();
      this.drop(node, conn, why);
      if (settled) return;
      settled = true;
      settle.reject(
        presented && !pinMatches(node.hostKey, presented)
          ? new HostKeyMismatchError(node.id, hostKeyFingerprint(presented))
          : new NodeUnreachableError(node.id, why),
      );
    };
    client.on('ready', () => {
      releaseSlot();
      if (settled || conn.lost) return;
      settled = true;
      settle.resolve(client);
    });
    client.on('error', (error: Error) => fail(error.message));
    // A peer that closes after its banner, before authentication, ends without any error event.
    client.on('end', () => fail('the connection was closed by the node'));
    client.on('close', () => fail('the connection was closed'));
    this.connections.set(key, conn);
    void this.connectSlots.acquire().then(
      (release) => {
        releaseSlot = release;
        // Dropped (the shell closed) while it waited in line: the slot goes to the next one, no connect.
        if (conn.lost) return fail(conn.lost);
        try {
          client.connect({
            host: node.host,
            port: node.port,
            username: node.user,
            privateKey: this.credentials.privateKey,
            readyTimeout: this.credentials.readyTimeoutMs ?? 5_000,
            keepaliveInterval: this.credentials.keepaliveIntervalMs ?? 5_000,
            keepaliveCountMax: 3,
            hostVerifier: (hostKey: Buffer) => {
              presented = hostKey;
              const ok = pinMatches(node.hostKey, hostKey);
              if (ok) this.verifiedKeys.set(key, keyLine(hostKey));
              return ok;
            },
          });
          // Without it, an exec's few small packets in a row (open, request, data, EOF) wait on the node's
          // delayed ACK: ~40 ms added to a command, several times over between a notice and its freeze.
          client.setNoDelay(true);
        } catch (error) {
          fail(error instanceof Error ? error.message : String(error));
        }
      },
      (error: Error) => fail(error.message),
    );
    return conn;
  }
}
