import { Client, type ClientChannel } from 'ssh2';
import { HostKeyMismatchError, NodeUnreachableError, type NodeTarget } from '@spotlift/domain';
import { hostKeyFingerprint, hostKeyMatches } from './host-key.js';
import {
  NodeShell,
  type CommandResult,
  type ExecOptions,
  type PortRelay,
  type RemoteProcess,
} from './node-shell.port.js';
import { sshLocalConnector, sshRemoteListener, startRelay } from './ssh-relay.js';

export interface SshCredentials {
  privateKey: Buffer;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
}

interface Connection {
  client: Client;
  ready: Promise<Client>;
}

/** `TYPE BASE64` of an SSH public key blob (its first field is the type name). */
function keyLine(blob: Buffer): string {
  const typeLength = blob.readUInt32BE(0);
  return `${blob.subarray(4, 4 + typeLength).toString('latin1')} ${blob.toString('base64')}`;
}

/**
 * NodeShell over ssh2: one pooled connection per node (keyed by id, host, port and pin), host keys pinned.
 * A dropped connection is forgotten and reopened by the next call.
 */
export class SshNodeShell extends NodeShell {
  private readonly connections = new Map<string, Connection>();
  /** Host keys nodes presented and their pins accepted, as `TYPE BASE64` (a pin may be a fingerprint). */
  private readonly verifiedKeys = new Map<string, string>();

  constructor(private readonly credentials: SshCredentials) {
    super();
  }

  override async connect(node: NodeTarget): Promise<void> {
    await this.client(node);
  }

  override async exec(node: NodeTarget, command: string, opts: ExecOptions = {}): Promise<CommandResult> {
    const channel = await this.openChannel(node, command);
    return new Promise<CommandResult>((resolve) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timer: NodeJS.Timeout | undefined;
      if (opts.timeoutMs) {
        timer = setTimeout(() => {
          err.push(Buffer.from(`\n[spotlift] command timed out after ${opts.timeoutMs} ms\n`));
          channel.signal('KILL');
          channel.close();
        }, opts.timeoutMs);
      }
      channel.on('data', (d: Buffer) => out.push(d));
      channel.stderr.on('data', (d: Buffer) => err.push(d));
      channel.on('close', (code: number | null, signal?: string) => {
        if (timer) clearTimeout(timer);
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

  override async spawn(node: NodeTarget, command: string): Promise<RemoteProcess> {
    const channel = await this.openChannel(node, command);
    const err: Buffer[] = [];
    channel.stderr.on('data', (d: Buffer) => err.push(d));
    const done = new Promise<{ code: number | null; signal?: string; stderr: string }>((resolve) => {
      channel.on('close', (code: number | null, signal?: string) =>
        resolve({
          code: typeof code === 'number' ? code : null,
          ...(signal ? { signal } : {}),
          stderr: Buffer.concat(err).toString('utf8'),
        }),
      );
    });
    return { stdin: channel, stdout: channel, done };
  }

  /** Page traffic through SSH: see ssh-relay.ts for the design. */
  override async relayPort(source: NodeTarget, destination: NodeTarget, destPort: number): Promise<PortRelay> {
    const [src, dst] = await Promise.all([this.client(source), this.client(destination)]);
    return startRelay(sshRemoteListener(src), sshLocalConnector(dst), destPort);
  }

  override async verifiedHostKey(node: NodeTarget): Promise<string | undefined> {
    await this.client(node);
    return this.verifiedKeys.get(this.key(node));
  }

  override async close(): Promise<void> {
    for (const conn of this.connections.values()) conn.client.end();
    this.connections.clear();
    return Promise.resolve();
  }

  private async openChannel(node: NodeTarget, command: string): Promise<ClientChannel> {
    const client = await this.client(node);
    return new Promise<ClientChannel>((resolve, reject) => {
      client.exec(command, (error, channel) => {
        if (error) {
          // A broken connection: forget it so the next call reconnects.
          this.connections.delete(this.key(node));
          reject(new NodeUnreachableError(node.id, error.message));
        } else resolve(channel);
      });
    });
  }

  private key(node: NodeTarget): string {
    return `${node.id}|${node.host}|${node.port}|${node.hostKey}`;
  }

  private async client(node: NodeTarget): Promise<Client> {
    const key = this.key(node);
    const existing = this.connections.get(key);
    if (existing) return existing.ready;

    const client = new Client();
    let presented: Buffer | undefined;
    const ready = new Promise<Client>((resolve, reject) => {
      client.once('ready', () => resolve(client));
      client.once('error', (error: Error) => {
        this.connections.delete(key);
        if (presented && !hostKeyMatches(node.hostKey, presented)) {
          reject(new HostKeyMismatchError(node.id, hostKeyFingerprint(presented)));
        } else reject(new NodeUnreachableError(node.id, error.message));
      });
      client.on('close', () => this.connections.delete(key));
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
          const ok = hostKeyMatches(node.hostKey, hostKey);
          if (ok) this.verifiedKeys.set(key, keyLine(hostKey));
          return ok;
        },
      });
    });
    this.connections.set(key, { client, ready });
    return ready;
  }
}
