import { PassThrough } from 'node:stream';
import type { NodeTarget } from '@spotlift/domain';
import {
  NodeShell,
  type CommandResult,
  type ExecOptions,
  type PortRelay,
  type RemoteProcess,
} from '@spotlift/transport';

/** One scripted answer: the first rule whose node and pattern match a command answers it. */
export interface ShellRule {
  node?: string;
  match: RegExp;
  reply: Partial<CommandResult> | ((command: string, node: string) => Partial<CommandResult> | Error);
  /** Answer only this many times, then fall through to later rules. */
  times?: number;
}

/** The prefix of NodeOps.armTimed / DirectoryStreamer.arm commands. */
const ARMED = /^read spotlift_go; \[ "\$spotlift_go" = go \] \|\| exit 125; /;

export interface ShellCall {
  node: string;
  command: string;
  /** What exec() fed the command on stdin, if anything. */
  stdin?: string;
}

/**
 * A NodeShell for unit tests: replays scripted outputs (captured from real CRIU and shell runs) instead of
 * running anything, and records every command so tests can assert what was, and was not, done to a node.
 * Unmatched commands succeed with empty output (a node-side lock is granted); `strict` makes them throw instead.
 */
export class ScriptedNodeShell extends NodeShell {
  readonly calls: ShellCall[] = [];
  private readonly rules: ShellRule[] = [];

  constructor(private readonly strict = false) {
    super();
  }

  on(rule: ShellRule): this {
    this.rules.push(rule);
    return this;
  }

  /** Commands run on a node that match a pattern. */
  ran(node: string, match: RegExp): string[] {
    return this.calls.filter((c) => c.node === node && match.test(c.command)).map((c) => c.command);
  }

  override connect(): Promise<void> {
    return Promise.resolve();
  }

  override exec(node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    this.calls.push({ node: node.id, command, ...(opts?.stdin !== undefined ? { stdin: String(opts.stdin) } : {}) });
    const rule = this.rules.find((r) => (!r.node || r.node === node.id) && r.match.test(command) && (r.times ?? 1) > 0);
    if (!rule) {
      if (this.strict) return Promise.reject(new Error(`unscripted command on ${node.id}: ${command}`));
      // A node-side lock (NodeOps.holdLock) nobody else holds: it answers LOCKED, as on a real node.
      if (/flock -n .*echo LOCKED/.test(command)) return Promise.resolve({ code: 0, stdout: 'LOCKED\n', stderr: '' });
      return Promise.resolve({ code: 0, stdout: '', stderr: '' });
    }
    if (rule.times !== undefined) rule.times--;
    const out = typeof rule.reply === 'function' ? rule.reply(command, node.id) : rule.reply;
    if (out instanceof Error) return Promise.reject(out);
    return Promise.resolve({ code: 0, stdout: '', stderr: '', ...out });
  }

  /** Streams: stdout carries the scripted stdout; stdin is drained. */
  override async spawn(node: NodeTarget, command: string): Promise<RemoteProcess> {
    if (ARMED.test(command)) return this.spawnArmed(node, command);
    const res = await this.exec(node, command);
    const stdout = new PassThrough();
    const stdin = new PassThrough();
    stdin.resume();
    // Like a remote command: it ends once its output is read, and, when something is piped into it,
    // once that input has ended too.
    let piped = false;
    stdin.on('pipe', () => (piped = true));
    const outputRead = new Promise<void>((resolve) => stdout.on('end', resolve));
    const inputEnded = new Promise<void>((resolve) => stdin.on('finish', resolve));
    const done = outputRead
      .then(() => (piped ? inputEnded : undefined))
      .then(() => ({ code: res.code, stderr: res.stderr }));
    stdout.end(res.stdout);
    return { stdin, stdout, done };
  }

  /**
   * An armed command (`read spotlift_go; ... || exit 125; CMD`) runs, and is recorded, only once a `go`
   * line arrives on its stdin, as on a node; cancelled with anything else, it never ran.
   */
  private spawnArmed(node: NodeTarget, command: string): Promise<RemoteProcess> {
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let line = '';
    stdin.on('data', (d: Buffer) => (line += d.toString()));
    const done = new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      stdin.on('finish', () => {
        if (!line.startsWith('go')) {
          stdout.end();
          resolve({ code: 125, stderr: '' });
          return;
        }
        this.exec(node, command.replace(ARMED, '')).then((res) => {
          stdout.on('end', () => resolve({ code: res.code, stderr: res.stderr }));
          stdout.end(res.stdout);
        }, reject);
      });
    });
    return Promise.resolve({ stdin, stdout, done });
  }

  /** Relays are recorded as a `relay <dest port>` call on the source and move no bytes. */
  override relayPort(source: NodeTarget, destination: NodeTarget, destPort: number): Promise<PortRelay> {
    this.calls.push({ node: source.id, command: `relay ${destination.id}:${destPort}` });
    return Promise.resolve({
      sourcePort: destPort + 1,
      bytes: () => 0,
      bytesBack: () => 0,
      close: () => Promise.resolve(),
    });
  }

  override close(): Promise<void> {
    return Promise.resolve();
  }
}
