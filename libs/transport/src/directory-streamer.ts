import { createHash } from 'node:crypto';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { NodeTarget } from '@spotlift/domain';
import { NodeShell } from './node-shell.port.js';
import { shq } from './shell.js';

export interface StreamResult {
  bytes: number;
  sha256: string;
  durationMs: number;
}

export class TransferError extends Error {}

/**
 * Copies a directory from one node to another as one tar stream relayed by the orchestrator: one channel on
 * each side, no per-file round trips. The destination hashes what it received and the copy fails unless that
 * hash equals the one computed on the way through.
 */
export class DirectoryStreamer {
  constructor(private readonly shell: NodeShell) {}

  async copy(
    source: NodeTarget,
    sourceDir: string,
    destination: NodeTarget,
    destinationDir: string,
    opts: { exclude?: string[] } = {},
  ): Promise<StreamResult> {
    const started = process.hrtime.bigint();
    const excludes = (opts.exclude ?? []).map((p) => `--exclude=${shq(p)}`).join(' ');
    const sender = await this.shell.spawn(source, `tar -C ${shq(sourceDir)} ${excludes} -cf - .`);
    // POSIX sh only (dash, busybox ash): tee feeds tar and, through a fifo, a background sha256sum; `wait`
    // makes sure the hash is complete before it is printed.
    const d = shq(destinationDir);
    const receiver = await this.shell.spawn(
      destination,
      `set -e; mkdir -p ${d}; cd ${d}; rm -f .spotlift-rx.fifo; mkfifo .spotlift-rx.fifo; ` +
        `sha256sum < .spotlift-rx.fifo > .spotlift-rx.sha256 & ` +
        `tee .spotlift-rx.fifo | tar -xf -; wait; ` +
        `cut -c1-64 .spotlift-rx.sha256; rm -f .spotlift-rx.fifo .spotlift-rx.sha256`,
    );
    const hash = createHash('sha256');
    let bytes = 0;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, done) {
        hash.update(chunk);
        bytes += chunk.length;
        done(null, chunk);
      },
    });
    const received: Buffer[] = [];
    receiver.stdout.on('data', (d: Buffer) => received.push(d));
    try {
      await pipeline(sender.stdout, meter, receiver.stdin);
    } catch (error) {
      throw new TransferError(`image stream ${source.id} -> ${destination.id} broke: ${(error as Error).message}`);
    }
    const [sent, got] = await Promise.all([sender.done, receiver.done]);
    if (sent.code !== 0) throw new TransferError(`tar on ${source.id} failed (${sent.code}): ${sent.stderr.trim()}`);
    if (got.code !== 0) throw new TransferError(`unpacking on ${destination.id} failed (${got.code}): ${got.stderr.trim()}`);
    const sha256 = hash.digest('hex');
    const remote = Buffer.concat(received).toString('utf8').trim();
    if (remote !== sha256) {
      throw new TransferError(`checksum mismatch on ${destination.id}: sent ${sha256}, received ${remote || 'nothing'}`);
    }
    return { bytes, sha256, durationMs: Number(process.hrtime.bigint() - started) / 1e6 };
  }
}
