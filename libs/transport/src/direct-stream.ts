import type { NodeTarget } from '@spotlift/domain';
import {
  DIRECT_LISTENING,
  DIRECT_RECEIVED,
  DIRECT_SENT,
  type DirectTlsFiles,
  type NodeCommand,
  armed,
  directReceive,
  directSend,
  directStreamProbe,
} from '@spotlift/node-commands';
import type { NodeShell, RemoteProcess } from './node-shell.port.js';
import { type ArmedStream, type StreamResult, TransferError } from './stream-types.js';

export type { DirectTlsFiles } from '@spotlift/node-commands';

/**
 * Where a node-to-node stream goes: the destination's listener, what the source connects to (the same
 * endpoint over tcp/tls; the source's end of an SSH tunnel otherwise) and, for TLS, each side's certificate
 * files. The engine's page transports make one (PageChannel has the same shape).
 */
export interface DirectRoute {
  listen: { address: string; port: number };
  connect: { address: string; port: number };
  tls?: { server: DirectTlsFiles; client: DirectTlsFiles };
  /** Bound on the listener's wait and on the sender's connection, seconds. */
  timeoutS: number;
}

/** How long the destination's listener may take to come up (it is armed before a freeze). */
const LISTEN_WAIT_MS = 15_000;
/** How long a failed stream's other end gets to report its end. */
const SETTLE_MS = 30_000;

/**
 * A stream from a command on one node straight to a listener on another (DirectRoute), not through the
 * orchestrator: the orchestrator only opens both commands, says go, and compares the sha256 each end
 * computed. Armed in two steps before a freeze: the listener must say it is bound (else arming fails, before
 * anything was frozen), then the sender waits for its go line.
 */
export class DirectStreamer {
  constructor(private readonly shell: NodeShell) {}

  /** What the pair lacks for a direct stream ("node-b: no busybox nc"), or undefined when it has it all. */
  async problem(source: NodeTarget, destination: NodeTarget, tls: boolean): Promise<string | undefined> {
    const ask = async (node: NodeTarget, side: 'send' | 'receive') => {
      const res = await this.shell.exec(node, directStreamProbe(side, tls), { timeoutMs: 15_000 });
      const missing = [...res.stdout.matchAll(/^DIRECT_MISSING (.+)$/gm)].map((m) => m[1]!);
      if (res.code !== 0) return `${node.id}: the tool check failed (${res.code})`;
      return missing.length ? `${node.id} has no ${missing.join(', ')}` : undefined;
    };
    const [s, d] = await Promise.all([ask(source, 'send'), ask(destination, 'receive')]);
    return [s, d].filter(Boolean).join('; ') || undefined;
  }

  async armPipe(
    source: NodeTarget,
    send: NodeCommand,
    destination: NodeTarget,
    receive: { dir: string; unpack: NodeCommand; what: string },
    route: DirectRoute,
  ): Promise<ArmedStream> {
    const receiver = await this.shell.spawn(
      destination,
      directReceive({
        dir: receive.dir,
        listen: route.listen,
        unpack: receive.unpack,
        timeoutS: route.timeoutS,
        ...(route.tls ? { tls: route.tls.server } : {}),
      }),
    );
    const out = collect(receiver);
    await this.listening(receiver, out, destination, receive.what, route).catch(async (e: Error) => {
      receiver.stdin.end();
      await settle(receiver.done);
      throw e;
    });
    let sender: RemoteProcess;
    try {
      sender = await this.shell.spawn(
        source,
        armed(
          directSend({
            send,
            connect: route.connect,
            timeoutS: route.timeoutS,
            ...(route.tls ? { tls: route.tls.client } : {}),
          }),
        ),
      );
    } catch (error) {
      receiver.stdin.end(); // its listener dies with the channel
      await settle(receiver.done);
      throw error;
    }
    const sent = collect(sender);
    let started = false;
    return {
      start: async () => {
        started = true;
        const t0 = process.hrtime.bigint();
        sender.stdin.end('go\n');
        const s = await sender.done;
        // A failed sender may never have connected: end the listener now instead of at its timeout.
        if (s.code !== 0) receiver.stdin.end();
        const r = await (s.code === 0 ? receiver.done : settle(receiver.done));
        receiver.stdin.end();
        const where = `${receive.what} ${source.id} -> ${destination.id} (direct to ${route.connect.address}:${route.connect.port})`;
        if (s.code !== 0)
          throw new TransferError(`${where}: sending failed (${s.code}): ${s.stderr.trim().slice(-800)}`);
        if (!r || r.code !== 0) {
          throw new TransferError(
            `${where}: receiving failed (${r?.code ?? 'no end'}): ${r?.stderr.trim().slice(-400)}`,
          );
        }
        const mine = new RegExp(`^${DIRECT_SENT} ([0-9a-f]{64})$`, 'm').exec(sent())?.[1];
        const got = new RegExp(`^${DIRECT_RECEIVED} (\\d+) ([0-9a-f]{64})$`, 'm').exec(out());
        if (!mine || !got || got[2] !== mine) {
          throw new TransferError(
            `${where}: checksum mismatch on ${destination.id}: sent ${mine ?? 'nothing'}, received ${got?.[2] ?? 'nothing'}`,
          );
        }
        return {
          bytes: Number(got[1]),
          sha256: mine,
          durationMs: Number(process.hrtime.bigint() - t0) / 1e6,
          senderStderr: s.stderr,
        } satisfies StreamResult;
      },
      cancel: async () => {
        if (started) return;
        sender.stdin.end('no\n');
        receiver.stdin.end();
        await Promise.allSettled([settle(sender.done), settle(receiver.done)]);
      },
    };
  }

  /** Resolves once the receiver says its listener is bound; rejects with why it is not. */
  private listening(
    receiver: RemoteProcess,
    out: () => string,
    destination: NodeTarget,
    what: string,
    route: DirectRoute,
  ): Promise<void> {
    const where = `${what}: the listener on ${destination.id} port ${route.listen.port}`;
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        if (out().includes(DIRECT_LISTENING)) finish();
      };
      const timer = setTimeout(
        () => finish(new TransferError(`${where} did not come up in ${LISTEN_WAIT_MS} ms`)),
        LISTEN_WAIT_MS,
      );
      timer.unref();
      const finish = (error?: Error) => {
        clearTimeout(timer);
        receiver.stdout.off('data', check);
        if (error) reject(error);
        else resolve();
      };
      receiver.stdout.on('data', check);
      receiver.done.then(
        (r) =>
          finish(new TransferError(`${where} ended before a connection (${r.code}): ${r.stderr.trim().slice(-400)}`)),
        (e: Error) => finish(e),
      );
      check();
    });
  }
}

/**
 * What a node's sender or listener says (a line or two) is all we read. A node printing more keeps only its first
 * 4 KiB (where the listener says it is bound) and its last 64 KiB (where both ends give their hash): bounded memory.
 */
export const COLLECT_HEAD_BYTES = 4 * 1024;
export const COLLECT_TAIL_BYTES = 64 * 1024;
/** Put where bytes were dropped, so the head's last line and the tail's first do not read as one line. */
export const COLLECT_GAP = '\n[spotlift: output dropped]\n';

/** The head and the tail of what a command wrote on stdout, read as it comes. */
export function collect(p: Pick<RemoteProcess, 'stdout'>): () => string {
  let head = Buffer.alloc(0);
  let tail = Buffer.alloc(0);
  let dropped = false;
  p.stdout.on('data', (d: Buffer) => {
    if (head.length < COLLECT_HEAD_BYTES) {
      const take = d.subarray(0, COLLECT_HEAD_BYTES - head.length);
      head = Buffer.concat([head, take]);
      d = d.subarray(take.length);
    }
    if (!d.length) return;
    const kept = Buffer.concat([tail, d]);
    dropped ||= kept.length > COLLECT_TAIL_BYTES;
    // A copy, not a view: a view would keep a large chunk's whole buffer alive.
    tail = kept.length > COLLECT_TAIL_BYTES ? Buffer.from(kept.subarray(kept.length - COLLECT_TAIL_BYTES)) : kept;
  });
  return () => head.toString('utf8') + (dropped ? COLLECT_GAP : '') + tail.toString('utf8');
}

function settle<T>(p: Promise<T>): Promise<T | undefined> {
  return Promise.race([
    p.catch(() => undefined),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), SETTLE_MS).unref()),
  ]);
}
