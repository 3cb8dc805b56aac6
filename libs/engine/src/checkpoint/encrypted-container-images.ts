import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type CheckpointRecord, DomainError, type NodeRecord } from '@spotlift/domain';
import { CriuImageError } from '@spotlift/criu';
import { TarGuard, TarRefused } from '@spotlift/transport';
import { extract as tarExtract, pack as tarPack } from 'tar-stream';
import type { NodeOps } from '../node-ops/node-ops.js';
import {
  OPENSSL_HEADER_BYTES,
  isEncryptedFile,
  macLines,
  openDataKey,
  openMacLines,
  opensslSeal,
} from './checkpoint-crypto.js';
import { CheckpointArchiveMembers } from './container-archive.js';
import { CONTAINER_ARCHIVE } from './container-checkpoints.js';
import { writeEntry } from './decrypted-archive.js';
import { StoredImages } from './stored-images.js';

/** The unpacked members' ciphertext sums, under a mac of the data key (the storage node cannot change them). */
export const SUMS_FILE = 'archive.sums';

/** The ciphertext sums of an unpack: the dumps at its top, CRIU's images under `checkpoint/`. */
export interface UnpackedSums {
  top: Map<string, string>;
  images: Map<string, string>;
}

/**
 * An encrypted container checkpoint's images for inspect and search. Its storage node holds Podman's archive
 * as ciphertext and no key, so it cannot unpack it: the orchestrator does. The archive streams from the storage
 * node decrypted here (StoredImages.exportFile: the sum recorded at the take checked, a mismatch cuts it),
 * through the same TarGuard and picking as a plain one's (container-archive.ts); each picked member goes back
 * to the storage node encrypted per file with the checkpoint's data key (openssl's format, as a process
 * checkpoint's images), in one tar the node unpacks beside the last unpack (receiveArchiveMembers). Its
 * ciphertext sums come last, under a mac of the data key: the node renames the part only once they arrived,
 * and StoredImages checks every metadata file against them, as it checks a process checkpoint's against the
 * record. Plaintext is never written to a disk: not the storage node's, not the orchestrator's.
 */
export async function openEncryptedUnpack(
  ops: NodeOps,
  storage: NodeRecord,
  cp: CheckpointRecord,
  master: Uint8Array | undefined,
  into: string,
): Promise<{ dataKey: string; sums: UnpackedSums; unpacked: boolean; archiveBytes: number }> {
  // A key that does not open it fails here, before anything runs on a node.
  const dataKey = openDataKey(master, cp.encryption!, `checkpoint '${cp.id}'`);
  const earlier = await readSums(ops, storage, cp, dataKey, into);
  if (earlier) return { dataKey, sums: earlier, unpacked: false, archiveBytes: 0 };
  const archiveBytes = await unpack(ops, storage, cp, dataKey, master, into);
  // An unpack of the same archive that finished first is kept (the node's choice): read what is there.
  const sums = await readSums(ops, storage, cp, dataKey, into);
  if (!sums) throw new CriuImageError(`${SUMS_FILE} of checkpoint '${cp.id}' on '${storage.id}' does not open`);
  return { dataKey, sums, unpacked: true, archiveBytes };
}

/** The sums an earlier unpack of this archive left, if they are there and their mac opens. */
async function readSums(
  ops: NodeOps,
  storage: NodeRecord,
  cp: CheckpointRecord,
  dataKey: string,
  into: string,
): Promise<UnpackedSums | undefined> {
  const top = new StoredImages(ops, storage, `${cp.imageDir}/${into}`);
  let sealed: string;
  try {
    if (!(await top.list()).has(SUMS_FILE)) return undefined;
    sealed = Buffer.from((await top.read([SUMS_FILE]))[SUMS_FILE]!).toString('utf8');
  } catch (error) {
    if (error instanceof DomainError) return undefined; // not unpacked yet
    throw error;
  }
  const lines = openMacLines(dataKey, sealed)?.split('\n');
  if (!lines || lines[0] !== `archive ${cp.sha256}`) return undefined;
  const sums: UnpackedSums = { top: new Map(), images: new Map() };
  for (const line of lines.slice(1)) {
    const m = /^([0-9a-f]{64}) {2}(checkpoint\/)?([A-Za-z0-9._-]{1,128})$/.exec(line);
    if (!m) return undefined;
    (m[2] ? sums.images : sums.top).set(m[3]!, m[1]!);
  }
  return sums;
}

/** The archive through the guard, its picked members encrypted to the storage node; the archive's bytes. */
async function unpack(
  ops: NodeOps,
  storage: NodeRecord,
  cp: CheckpointRecord,
  dataKey: string,
  master: Uint8Array | undefined,
  into: string,
): Promise<number> {
  const source = await StoredImages.of(ops, storage, cp, master).exportFile(CONTAINER_ARCHIVE);
  const part = `${into}.part-${randomBytes(4).toString('hex')}`;
  let remote;
  try {
    remote = await ops.receiveArchiveMembers(storage, cp.imageDir, part, into, SUMS_FILE);
  } catch (error) {
    source.stdout.destroy();
    throw error;
  }
  // It prints nothing; its stdout is read anyway, so the channel can end (an unread one never closes).
  remote.stdout.resume();
  const pack = tarPack();
  const gone = new Promise<never>((_r, reject) =>
    pack.once('close', () => reject(new Error(`the stream to '${storage.id}' closed`))),
  );
  gone.catch(() => undefined);
  const sent = pipeline(Readable.from(pack), remote.stdin);
  sent.catch(() => pack.destroy());
  pack.on('error', () => undefined);

  // Every member the guard judged, in order: the parser that splits out the data must read the same ones.
  const members = new CheckpointArchiveMembers();
  const judged: { name: string; key: string; picked: boolean }[] = [];
  const guard = new TarGuard({
    roots: [],
    judge: (m) => {
      const before = members.picked.length;
      members.judge(m);
      judged.push({ name: m.name, key: m.parts.join('/'), picked: members.picked.length > before });
    },
  });
  const parser = tarExtract();
  let archiveBytes = 0;
  const feeding = (async () => {
    try {
      for await (const chunk of source.stdout as AsyncIterable<Buffer>) {
        archiveBytes += chunk.length;
        for (const out of guard.write(chunk)) {
          if (!parser.write(out)) await drained(parser);
        }
        if (guard.refused) throw guard.refused;
      }
      guard.end();
      // streamx's end: no final chunk (its typing asks for one)
      parser.end(undefined);
    } catch (error) {
      parser.destroy(error as Error);
      throw error;
    }
  })();
  feeding.catch(() => undefined);

  try {
    const sums: string[] = [];
    await writeEntry(pack, { name: 'checkpoint', type: 'directory', mode: 0o700 }, [], gone);
    let at = 0;
    for await (const entry of parser) {
      const m = judged[at++];
      const name = entry.header.name.replace(/\/+$/, '');
      if (m?.name.replace(/\/+$/, '') !== name)
        throw new TarRefused(`member ${JSON.stringify(name)} is not the one the guard read there`);
      const file = m.key.split('/').pop()!;
      // Logs and the files kept in clear are not needed to inspect: only ciphertext goes back.
      if (!m.picked || !isEncryptedFile(file, cp.encryption)) {
        entry.resume();
        continue;
      }
      const seal = opensslSeal(dataKey);
      const hash = createHash('sha256').update(seal.header);
      const ciphertext = async function* () {
        yield seal.header;
        for await (const chunk of entry as AsyncIterable<Buffer>) {
          const out = seal.update(chunk);
          hash.update(out);
          yield out;
        }
      };
      await writeEntry(
        pack,
        { name: m.key, size: entry.header.size + OPENSSL_HEADER_BYTES, mode: 0o600 },
        ciphertext(),
        gone,
      );
      sums.push(`${hash.digest('hex')}  ${m.key}`);
    }
    await feeding;
    members.result();
    const sealed = Buffer.from(macLines(dataKey, [`archive ${cp.sha256}`, ...sums].join('\n')));
    await writeEntry(pack, { name: SUMS_FILE, size: sealed.length, mode: 0o600 }, [sealed], gone);
    pack.finalize();
    await sent;
  } catch (error) {
    source.stdout.destroy();
    pack.destroy();
    remote.stdin.destroy();
    await remote.done.catch(() => undefined);
    if (error instanceof TarRefused) {
      throw new CriuImageError(`${CONTAINER_ARCHIVE} of checkpoint '${cp.id}' is not unpacked: ${error.message}`);
    }
    throw error;
  }
  const done = await remote.done;
  if (done.code !== 0) {
    throw new DomainError(
      'images_unavailable',
      `unpacking ${CONTAINER_ARCHIVE} onto '${storage.id}' failed (exit ${done.code}): ${done.stderr.trim().slice(0, 300)}`,
      { node: storage.id },
      true,
    );
  }
  return archiveBytes;
}

/** Until the writable takes more, or closes (its reader failed: the loop's next write says so). */
function drained(w: { once(e: string, f: () => void): unknown; off(e: string, f: () => void): unknown }) {
  return new Promise<void>((resolve) => {
    const go = () => {
      w.off('drain', go);
      w.off('close', go);
      resolve();
    };
    w.once('drain', go);
    w.once('close', go);
  });
}
