import { createHash, type Hash } from 'node:crypto';
import { once } from 'node:events';
import { Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NodeTarget } from '@spotlift/domain';
import { NodeShell, type RemoteProcess } from './node-shell.port.js';
import { type NodeCommand, UNPACK_TAR, armed, receiveStream, tarCommand } from '@spotlift/node-commands';
import { TarGuard, type TarPolicy, TarRefused } from './tar-guard.js';
import { DirectStreamer } from './direct-stream.js';
import { type ArmedStream, type StreamResult, type StreamSeal, TransferError } from './stream-types.js';

export { type StreamResult, TransferError } from './stream-types.js';

/**
 * Sent to the destination in place of a refused member: a block no tar reads as a header (bad checksum), so
 * the unpacking tar fails (GNU tar: exit 2, busybox: 1) and the receiver's `after` never runs, whatever the
 * bytes before it left on disk (only members the guard passed).
 */
export const ABORT_BLOCK = Buffer.alloc(512, 0xff);

/** How long an aborted stream's two ends get to report their end before the copy fails anyway. */
const ABORT_WAIT_MS = 30_000;

export type { ArmedStream, StreamSeal } from './stream-types.js';

/**
 * Copies a directory from one node to another as one tar stream relayed by the orchestrator: one channel on
 * each side, no per-file round trips. The destination hashes what it received and the copy fails unless that
 * hash equals the one computed on the way through.
 */
export class DirectoryStreamer {
  /** The same copies node to node, over a route the engine opened (tcp, tls, an SSH tunnel). */
  readonly direct: DirectStreamer;

  constructor(private readonly shell: NodeShell) {
    this.direct = new DirectStreamer(shell);
  }

  async copy(
    source: NodeTarget,
    sourceDir: string,
    destination: NodeTarget,
    destinationDir: string,
    opts: { exclude?: string[] } = {},
  ): Promise<StreamResult> {
    return (await this.arm(source, sourceDir, destination, destinationDir, opts)).start();
  }

  /**
   * Opens both channels now and returns a stream that starts on `start()`: the sender waits for a go line
   * on its stdin before running tar. Arming before a freeze keeps channel opens out of the freeze window.
   */
  async arm(
    source: NodeTarget,
    sourceDir: string,
    destination: NodeTarget,
    destinationDir: string,
    opts: { exclude?: string[] } = {},
  ): Promise<ArmedStream> {
    return this.armPipe(source, tarCommand(sourceDir, opts.exclude ?? []), destination, {
      dir: destinationDir,
      unpack: UNPACK_TAR,
      what: 'image stream',
    });
  }

  /**
   * The general form: `send` writes a stream on the source (it starts on `start()`), `receive.unpack` reads it
   * on the destination in `receive.dir`, and `receive.after` runs there once it is unpacked. The stream is
   * hashed on the way through and on arrival, as for image directories.
   */
  async armPipe(
    source: NodeTarget,
    send: NodeCommand,
    destination: NodeTarget,
    receive: {
      dir: string;
      unpack: NodeCommand;
      after?: NodeCommand;
      what: string;
      /** Validate the tar stream on the way through (see tar-guard.ts); a refused member aborts the copy. */
      guard?: TarPolicy;
      /** What the destination gets instead of the sender's bytes (after the guard): see StreamSeal. */
      seal?: StreamSeal;
    },
  ): Promise<ArmedStream> {
    const sender = await this.shell.spawn(source, armed(send));
    // The receiver prints the sha256 of what arrived once it is unpacked (receiveStream).
    const receiver = await this.shell
      .spawn(destination, receiveStream(receive.dir, receive.unpack, receive.after))
      .catch((error: unknown) => {
        // The sender's channel is open and waiting: end it unrun, or it holds a channel of the node for good.
        sender.stdout.resume();
        sender.stdin.end('no\n');
        throw error;
      });
    let started = false;
    return {
      start: () => {
        started = true;
        return this.run(source, sender, destination, receiver, receive.what, receive.guard, receive.seal);
      },
      cancel: async () => {
        if (started) return;
        // Drain both outputs: a channel whose output nobody reads may never report its end.
        sender.stdout.resume();
        receiver.stdout.resume();
        sender.stdin.end('no\n');
        receiver.stdin.end();
        await Promise.allSettled([sender.done, receiver.done]);
      },
    };
  }

  private async run(
    source: NodeTarget,
    sender: RemoteProcess,
    destination: NodeTarget,
    receiver: RemoteProcess,
    what: string,
    policy?: TarPolicy,
    seal?: StreamSeal,
  ): Promise<StreamResult> {
    const started = process.hrtime.bigint();
    sender.stdin.end('go\n');
    const hash = createHash('sha256');
    let bytes = 0;
    const received: Buffer[] = [];
    receiver.stdout.on('data', (d: Buffer) => received.push(d));
    try {
      if (policy) {
        const label = `${what} from ${source.id}`;
        bytes = await this.relayGuarded(sender, receiver, new TarGuard(policy), hash, label, seal);
      } else {
        let header = seal?.header;
        const meter = new Transform({
          transform(chunk: Buffer, _enc, done) {
            const out = seal ? Buffer.concat([header ?? Buffer.alloc(0), seal.update(chunk)]) : chunk;
            header = undefined;
            hash.update(out);
            bytes += out.length;
            done(null, out);
          },
        });
        await pipeline(sender.stdout, meter, receiver.stdin);
      }
    } catch (error) {
      if (error instanceof TransferError) throw error;
      throw new TransferError(`${what} ${source.id} -> ${destination.id} broke: ${(error as Error).message}`);
    }
    const [sent, got] = await Promise.all([sender.done, receiver.done]);
    if (sent.code !== 0)
      throw new TransferError(`${what}: sending on ${source.id} failed (${sent.code}): ${sent.stderr.trim()}`);
    if (got.code !== 0)
      throw new TransferError(`${what}: unpacking on ${destination.id} failed (${got.code}): ${got.stderr.trim()}`);
    const sha256 = hash.digest('hex');
    const remote = Buffer.concat(received).toString('utf8').trim();
    if (remote !== sha256) {
      throw new TransferError(
        `${what}: checksum mismatch on ${destination.id}: sent ${sha256}, received ${remote || 'nothing'}`,
      );
    }
    return {
      bytes,
      sha256,
      durationMs: Number(process.hrtime.bigint() - started) / 1e6,
      senderStderr: sent.stderr,
    };
  }

  /**
   * Relays a tar stream member by member through the guard. On a refusal, or any failure on the way (a stream
   * that ends early, a sender that breaks), the destination gets ABORT_BLOCK and the end of its input, the
   * sender's channel is closed (its tar dies of the broken pipe), and the copy fails once both ends reported
   * (at most ABORT_WAIT_MS): a truncated stream must not look complete to the destination's tar.
   */
  private async relayGuarded(
    sender: RemoteProcess,
    receiver: RemoteProcess,
    guard: TarGuard,
    hash: Hash,
    what: string,
    seal?: StreamSeal,
  ): Promise<number> {
    const to: Writable = receiver.stdin;
    let bytes = 0;
    let header = seal?.header;
    const broken = new Promise<never>((_, reject) => {
      to.on('error', reject);
      to.once('close', () => reject(new Error('the receiving channel closed')));
    });
    broken.catch(() => undefined);
    const forward = async (chunks: Buffer[]) => {
      for (const judged of chunks) {
        const c = seal ? Buffer.concat([header ?? Buffer.alloc(0), seal.update(judged)]) : judged;
        header = undefined;
        hash.update(c);
        bytes += c.length;
        if (!to.write(c)) await Promise.race([once(to, 'drain'), broken]);
      }
    };
    let atEnd = false;
    try {
      // not destroyed on the way out: it is drained below, which a destroyed stream would not be
      for await (const chunk of sender.stdout.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
        await forward(guard.write(chunk)); // what came before a refused member still goes: it passed
        if (guard.refused) throw guard.refused;
      }
      atEnd = true;
      guard.end();
    } catch (error) {
      // Close the sender's channel, and drain what it still sends: an ssh2 channel reports its end only
      // once its output was read.
      sender.stdout.on('data', () => undefined);
      sender.stdout.resume();
      sender.stdout.destroy();
      if (to.writable) to.end(ABORT_BLOCK);
      const settle = <T>(p: Promise<T>) =>
        Promise.race([
          p,
          new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), ABORT_WAIT_MS).unref()),
        ]);
      const [sent] = await Promise.all([settle(sender.done), settle(receiver.done)]);
      // A stream cut short because its sender failed (a declared path gone, a tar error): say why it failed.
      if (atEnd && sent && sent.code !== 0)
        throw new TransferError(`${what} failed on the sender (${sent.code}): ${sent.stderr.trim()}`);
      if (!(error instanceof TarRefused)) throw error;
      throw new TransferError(
        `${what} refused by the orchestrator after ${guard.members} accepted member(s) (the refused member and all after it ` +
          `never reached the destination): ${error.message}`,
      );
    }
    to.end();
    return bytes;
  }
}
