import { type Decipher, createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { RemoteProcess } from '@spotlift/transport';
import { pack as tarPack, type Pack } from 'tar-stream';
import { OPENSSL_HEADER_BYTES, type OpensslCtr } from './checkpoint-crypto.js';

/** One stored file of an encrypted checkpoint that goes into the archive, as the storage node listed it. */
export interface ArchiveMember {
  name: string;
  /** Its size as stored (an encrypted file's includes openssl's header). */
  storedBytes: number;
  /** The sha256 of the stored bytes, recorded when the checkpoint was taken (the storage node cannot change it). */
  sha256: string;
  encrypted: boolean;
}

/** An archive as it is produced: its bytes, and how its making ended (a non-zero code says why in `stderr`). */
export interface ArchiveStream {
  stdout: Readable;
  done: Promise<{ code: number | null; stderr: string }>;
}

/**
 * A tar archive built in the orchestrator from an encrypted checkpoint (the export of one: tar cannot run on the
 * storage node, which holds no key). `top` goes at the archive's top as given; each member is streamed from the
 * storage node (`open`: its stored bytes on stdout), decrypted here and written under `dir/`, one at a time, with
 * the consumer's pace (nothing is held beyond the streams' buffers).
 *
 * The storage node is trusted with nothing: a member must arrive with its listed size and the sha256 recorded at
 * the take. Its plaintext is in the archive before the sum can be known, so a mismatch cuts the archive (the
 * consumer gets an error, never a short or changed file that looks whole). A consumer that goes away (`stdout`
 * destroyed) ends the member's stream on the node and the building.
 */
export function decryptedArchive(
  top: Record<string, Uint8Array>,
  dir: string,
  members: readonly ArchiveMember[],
  open: (name: string) => Promise<RemoteProcess>,
  ctr: OpensslCtr,
  where: string,
): ArchiveStream {
  const pack = tarPack();
  let current: RemoteProcess | undefined;
  let closed = false;
  const gone = new Promise<never>((_resolve, reject) =>
    pack.once('close', () => {
      closed = true;
      current?.stdout.destroy();
      reject(new Error('the archive was closed before it was complete'));
    }),
  );
  gone.catch(() => undefined);
  const done = (async () => {
    try {
      for (const [name, bytes] of Object.entries(top))
        await writeEntry(pack, { name, size: bytes.length }, [bytes], gone);
      await writeEntry(pack, { name: dir, type: 'directory', mode: 0o700 }, [], gone);
      for (const m of members) {
        current = await open(m.name);
        if (closed) current.stdout.destroy();
        await writeEntry(
          pack,
          { name: `${dir}/${m.name}`, size: m.encrypted ? m.storedBytes - OPENSSL_HEADER_BYTES : m.storedBytes },
          plaintext(m, current, ctr, where),
          gone,
        );
        current = undefined;
      }
      pack.finalize();
      return { code: 0, stderr: '' };
    } catch (error) {
      current?.stdout.destroy();
      if (!closed) pack.destroy(error as Error);
      return { code: 1, stderr: (error as Error).message };
    }
  })();
  // A failure is `done`'s to say (the consumer cuts what it sends); an 'error' event nobody listens to would end
  // the process, so each stream here has a listener.
  pack.on('error', () => undefined);
  const stdout = Readable.from(pack, { objectMode: false });
  stdout.on('error', () => undefined);
  return { stdout, done };
}

/**
 * One stored encrypted file, decrypted as it streams from the storage node (a container checkpoint's export: Podman's
 * archive is already the layout), checked as an archive member is: a mismatch ends `stdout` with an error.
 */
export function decryptedFile(
  m: ArchiveMember,
  open: (name: string) => Promise<RemoteProcess>,
  ctr: OpensslCtr,
  where: string,
): ArchiveStream {
  let failure: Error | undefined;
  async function* chunks(): AsyncGenerator<Uint8Array> {
    try {
      yield* plaintext(m, await open(m.name), ctr, where);
    } catch (error) {
      failure = error as Error;
      throw error;
    }
  }
  const stdout = Readable.from(chunks(), { objectMode: false });
  stdout.on('error', () => undefined); // `done` says it
  const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
    stdout.once('close', () =>
      resolve(
        failure
          ? { code: 1, stderr: failure.message }
          : stdout.readableEnded
            ? { code: 0, stderr: '' }
            : { code: 1, stderr: 'the export was closed before it was complete' },
      ),
    ),
  );
  return { stdout, done };
}

/** A member's plaintext chunks as its stored bytes arrive, checked against its listed size and recorded sum. */
async function* plaintext(
  m: ArchiveMember,
  proc: RemoteProcess,
  ctr: OpensslCtr,
  where: string,
): AsyncGenerator<Uint8Array> {
  const hash = createHash('sha256');
  let received = 0;
  let header = Buffer.alloc(0);
  // null: a file stored in clear; undefined: an encrypted one whose header has not all arrived yet.
  let decipher: Decipher | null | undefined = m.encrypted ? undefined : null;
  for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
    received += chunk.length;
    if (received > m.storedBytes)
      throw new Error(`${m.name} from '${where}' is longer than its listed ${m.storedBytes} bytes`);
    hash.update(chunk);
    if (decipher === null) {
      yield chunk;
      continue;
    }
    let rest = chunk;
    if (!decipher) {
      header = Buffer.concat([header, chunk]);
      if (header.length < OPENSSL_HEADER_BYTES) continue;
      decipher = ctr.decipher(m.name, header.subarray(0, OPENSSL_HEADER_BYTES));
      rest = header.subarray(OPENSSL_HEADER_BYTES);
    }
    if (rest.length) yield decipher.update(rest);
  }
  const ended = await proc.done;
  if (ended.code !== 0 || received !== m.storedBytes) {
    throw new Error(
      `${m.name} from '${where}' arrived with ${received} of ${m.storedBytes} bytes (exit ${ended.code}${ended.stderr.trim() ? `: ${ended.stderr.trim().slice(0, 200)}` : ''})`,
    );
  }
  if (hash.digest('hex') !== m.sha256) {
    throw new Error(
      `${m.name} on '${where}' differs from the checksums recorded when the checkpoint was taken (tampered or damaged): the export is cut`,
    );
  }
}

/** One entry, its data written as the pack takes it; rejects when the pack closes first. */
export async function writeEntry(
  pack: Pack,
  header: Parameters<Pack['entry']>[0],
  data: Iterable<Uint8Array> | AsyncIterable<Uint8Array>,
  gone: Promise<never>,
): Promise<void> {
  let sink!: ReturnType<Pack['entry']>;
  const finished = new Promise<void>((resolve, reject) => {
    sink = pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
  sink.on('error', () => undefined);
  // It may fail after this entry already failed another way (the pack destroyed): that is no new error.
  finished.catch(() => undefined);
  if (header.type !== 'directory') {
    for await (const chunk of data) {
      if (!sink.write(chunk)) await Promise.race([new Promise<void>((r) => sink.once('drain', () => r())), gone]);
    }
    // streamx's end: no final chunk (its typing asks for one)
    sink.end(undefined);
  }
  await Promise.race([finished, gone]);
}
