import { type CheckpointRecord, DomainError, type NodeRecord } from '@spotlift/domain';
import {
  CriuImageError,
  exportLayout,
  inspectImages,
  type ExportInput,
  type ExportLayout,
  metadataImageNames,
  readPagemap,
  searchMemory,
  type ImageInspection,
  type PageSource,
  type Pagemap,
  type SearchLimits,
  type SearchResult,
} from '@spotlift/criu';
import type { NodeOps } from '../node-ops/node-ops.js';
import {
  OPENSSL_HEADER_BYTES,
  OpensslCtr,
  isEncryptedFile,
  openDataKey,
  parseSums,
  sha256Hex,
} from './checkpoint-crypto.js';
import { type ArchiveStream, decryptedArchive, decryptedFile } from './decrypted-archive.js';

/** An encrypted checkpoint's key and the ciphertext sums recorded at its take (checkpoint-crypto.ts). */
interface Decryption {
  ctr: OpensslCtr;
  sums: Map<string, string>;
  encryption: NonNullable<CheckpointRecord['encryption']>;
}

/**
 * A stored checkpoint's images, read from the storage node for inspection and search. The storage node is
 * a node too (trusted with nothing): names are checked, sizes are listed before anything is read and bounded,
 * what arrives must match what was listed, and every byte is decoded by the bounded pure reader.
 */
export const STORED_IMAGE_LIMITS = {
  /** One metadata image (core, mm, files...): real ones are KiB. */
  maxFileBytes: 4 << 20,
  /** All metadata images of one checkpoint together, read in one round trip: as base64 within the 8 MiB stdout bound. */
  maxMetadataBytes: 5 << 20,
  /** Pages are read in blocks of this size, a few kept. */
  block: 1 << 20,
  cachedBlocks: 8,
} as const;

const NAME = /^[A-Za-z0-9._-]{1,128}$/;

export class StoredImages {
  /** Plaintext sizes (an encrypted file's less openssl's header); `raw`: as stored. */
  private sizes?: Map<string, number>;
  private readonly raw = new Map<string, number>();
  private readonly headers = new Map<string, Uint8Array>();
  private readonly blocks = new Map<string, Uint8Array>();

  constructor(
    private readonly ops: NodeOps,
    private readonly node: NodeRecord,
    private readonly dir: string,
    private readonly decryption?: Decryption,
  ) {}

  /**
   * The checkpoint's images; an encrypted one's are decrypted here, in the orchestrator, with the data key its
   * master key unwraps (`master`; CheckpointKeyError when it cannot): the storage node never sees a key.
   */
  static of(ops: NodeOps, node: NodeRecord, cp: CheckpointRecord, master?: Uint8Array): StoredImages {
    if (!cp.encryption) return new StoredImages(ops, node, cp.imageDir);
    const dataKey = openDataKey(master, cp.encryption, `checkpoint '${cp.id}'`);
    return new StoredImages(ops, node, cp.imageDir, {
      ctr: new OpensslCtr(dataKey),
      sums: parseSums(cp.encryption.sums ?? ''),
      encryption: cp.encryption,
    });
  }

  /**
   * Files the orchestrator encrypted itself with the checkpoint's data key (an encrypted container checkpoint's
   * unpacked images: container-images.ts), checked against `sums` it recorded then, as a process checkpoint's are.
   */
  static encryptedDir(
    ops: NodeOps,
    node: NodeRecord,
    dir: string,
    dataKey: string,
    sums: Map<string, string>,
    encryption: NonNullable<CheckpointRecord['encryption']>,
  ): StoredImages {
    return new StoredImages(ops, node, dir, { ctr: new OpensslCtr(dataKey), sums, encryption });
  }

  private encrypted(name: string): boolean {
    return isEncryptedFile(name, this.decryption?.encryption);
  }

  /** File name -> size, as the storage node lists them; names that are not plain image names are dropped. */
  async list(): Promise<Map<string, number>> {
    if (this.sizes) return this.sizes;
    const res = await this.ops.listImageFiles(this.node, this.dir);
    if (res.code !== 0) {
      throw new DomainError(
        'images_unavailable',
        `the images in ${this.dir} on '${this.node.id}' cannot be listed (exit ${res.code}): ${res.stderr.trim().slice(0, 200)}`,
        { node: this.node.id },
        true,
      );
    }
    const sizes = new Map<string, number>();
    for (const m of res.stdout.matchAll(/^FILE (\d+) (\S+)$/gm)) {
      if (!NAME.test(m[2]!)) continue;
      this.raw.set(m[2]!, Number(m[1]));
      sizes.set(m[2]!, this.encrypted(m[2]!) ? Math.max(0, Number(m[1]) - OPENSSL_HEADER_BYTES) : Number(m[1]));
    }
    this.sizes = sizes;
    return sizes;
  }

  /** The named files' bytes; each must be listed, within the bounds, and arrive with the listed size. */
  async read(names: readonly string[]): Promise<Record<string, Uint8Array>> {
    const sizes = await this.list();
    let total = 0;
    for (const n of names) {
      const size = sizes.get(n);
      if (size === undefined) throw new CriuImageError(`${n} is not in ${this.dir} on '${this.node.id}'`);
      if (size > STORED_IMAGE_LIMITS.maxFileBytes) {
        throw new CriuImageError(
          `${n} on '${this.node.id}' is ${size} bytes; a metadata image over ${STORED_IMAGE_LIMITS.maxFileBytes} is not read`,
        );
      }
      total += this.raw.get(n) ?? size;
    }
    if (total > STORED_IMAGE_LIMITS.maxMetadataBytes) {
      throw new CriuImageError(
        `the checkpoint's metadata images are ${total} bytes together, over ${STORED_IMAGE_LIMITS.maxMetadataBytes}`,
      );
    }
    const res = await this.ops.readImageFiles(this.node, this.dir, names);
    const out: Record<string, Uint8Array> = {};
    for (const m of res.stdout.matchAll(/^IMG (\S+) ([A-Za-z0-9+/=]*)$/gm)) {
      if (names.includes(m[1]!)) out[m[1]!] = new Uint8Array(Buffer.from(m[2]!, 'base64'));
    }
    for (const n of names) {
      if (out[n]?.length !== this.raw.get(n)) {
        throw new CriuImageError(
          `${n} from '${this.node.id}' arrived with ${out[n]?.length ?? 0} bytes, listed as ${this.raw.get(n)}`,
        );
      }
      if (this.encrypted(n)) out[n] = this.decrypt(n, out[n]!);
    }
    return out;
  }

  /** A whole encrypted file, checked against the sum its source recorded (CTR alone would hide a change). */
  private decrypt(name: string, file: Uint8Array): Uint8Array {
    const { sums, ctr } = this.decryption!;
    const want = sums.get(name);
    if (!want || sha256Hex(file) !== want) {
      throw new CriuImageError(
        `${name} on '${this.node.id}' ${want ? 'differs from' : 'is not in'} the checksums recorded when the checkpoint was taken (tampered or damaged)`,
      );
    }
    return ctr.decryptFile(name, file);
  }

  /** Pages read in aligned blocks over SSH, only within the listed size of each pages file. */
  pageSource(): PageSource {
    return {
      read: async (file, offset, length) => {
        const size = (await this.list()).get(file);
        if (size === undefined || offset < 0 || offset + length > size) return undefined;
        const out = new Uint8Array(length);
        const { block } = STORED_IMAGE_LIMITS;
        for (let at = offset; at < offset + length;) {
          const start = at - (at % block);
          const bytes = await this.block(file, start, Math.min(block, size - start));
          const from = at - start;
          const take = Math.min(bytes.length - from, offset + length - at);
          if (take <= 0) return undefined;
          out.set(bytes.subarray(from, from + take), at - offset);
          at += take;
        }
        return out;
      },
    };
  }

  private async block(file: string, start: number, length: number): Promise<Uint8Array> {
    const key = `${file}@${start}`;
    const cached = this.blocks.get(key);
    if (cached) return cached;
    const encrypted = this.encrypted(file);
    const header = encrypted ? await this.header(file) : undefined;
    const at = encrypted ? start + OPENSSL_HEADER_BYTES : start;
    let bytes = await this.range(file, at, length);
    // CTR: any block decrypts on its own, at its offset. Pages are not summed block by block: a changed page
    // decrypts to other bytes (what search shows), it cannot reach anything else.
    if (header) bytes = this.decryption!.ctr.decryptAt(file, header, start, bytes);
    if (this.blocks.size >= STORED_IMAGE_LIMITS.cachedBlocks) this.blocks.delete(this.blocks.keys().next().value!);
    this.blocks.set(key, bytes);
    return bytes;
  }

  private async range(file: string, start: number, length: number): Promise<Uint8Array> {
    const res = await this.ops.readImageRange(this.node, this.dir, file, start, length);
    const bytes = new Uint8Array(Buffer.from(res.stdout.trim(), 'base64'));
    if (bytes.length !== length) {
      throw new CriuImageError(`${file} on '${this.node.id}': ${bytes.length} bytes at ${start}, expected ${length}`);
    }
    return bytes;
  }

  /** openssl's salt header of an encrypted pages file, read once. */
  private async header(file: string): Promise<Uint8Array> {
    let header = this.headers.get(file);
    if (!header) {
      header = await this.range(file, 0, OPENSSL_HEADER_BYTES);
      this.headers.set(file, header);
    }
    return header;
  }

  /** What the images hold (inspectImages), pages read only where a command line lies. */
  async inspect(): Promise<{ inspection: ImageInspection; files: Record<string, number> }> {
    const sizes = await this.list();
    const files = await this.read(metadataImageNames([...sizes.keys()]));
    const inspection = await inspectImages(files, this.pageSource());
    return { inspection, files: Object.fromEntries([...sizes].sort(([a], [b]) => a.localeCompare(b))) };
  }

  /** Scans every dumped page for `pattern`, within `limits`. */
  async search(pattern: Uint8Array, limits: SearchLimits): Promise<SearchResult> {
    const sizes = await this.list();
    const files = await this.read(metadataImageNames([...sizes.keys()]));
    const { processes } = await inspectImages(files, this.pageSource());
    const maps = new Map<number, Pagemap>();
    for (const p of processes) {
      const name = `pagemap-${p.pid}.img`;
      if (files[name]) maps.set(p.pid, readPagemap(name, files[name]));
    }
    return searchMemory(processes, maps, this.pageSource(), pattern, limits);
  }

  /**
   * The checkpoint as an archive in Podman's layout, streamed from the storage node (tar's stdout): the
   * metadata files come from the decoded images; `stageDir` (next to the images) is removed when tar ends.
   */
  async export(
    input: Omit<ExportInput, 'inspection'>,
    stageDir: string,
  ): Promise<{ proc: ArchiveStream; layout: ExportLayout }> {
    const { inspection } = await this.inspect();
    const layout = exportLayout({ ...input, inspection });
    if (this.decryption) return { proc: await this.decryptedExport(layout), layout };
    const names = Object.keys(layout.files);
    const stdin = names.map((n) => `${n} ${Buffer.from(layout.files[n]!).toString('base64')}\n`).join('');
    const proc = await this.ops.exportArchive(this.node, this.dir, stageDir, names, stdin);
    return { proc, layout };
  }

  /** One stored file of an encrypted checkpoint, decrypted here as it streams (Podman's archive of a container). */
  async exportFile(name: string): Promise<ArchiveStream> {
    const sizes = await this.list();
    const sha256 = this.decryption?.sums.get(name);
    if (!sizes.has(name) || !sha256 || !this.encrypted(name)) {
      throw new CriuImageError(
        `${name} is not an encrypted file of ${this.dir} on '${this.node.id}' with a recorded sum`,
      );
    }
    const member = { name, storedBytes: this.raw.get(name)!, sha256, encrypted: true };
    return decryptedFile(
      member,
      (n) => this.ops.sendImageFile(this.node, this.dir, n),
      this.decryption!.ctr,
      this.node.id,
    );
  }

  /**
   * An encrypted checkpoint's archive, built here (decrypted-archive.ts): the files its source's sums list, each
   * streamed from the storage node and decrypted on the way; `stats-dump` (in clear, small) also at the top, as
   * Podman has it. Anything else on the storage node (logs, its own SHA256SUMS) stays out.
   */
  private async decryptedExport(layout: ExportLayout): Promise<ArchiveStream> {
    const sizes = await this.list();
    const { sums, ctr } = this.decryption!;
    const members = [...this.raw]
      .filter(([name]) => sums.has(name))
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([name, storedBytes]) => ({
        name,
        storedBytes,
        sha256: sums.get(name)!,
        encrypted: this.encrypted(name),
      }));
    const top: Record<string, Uint8Array> = Object.fromEntries(
      Object.entries(layout.files).map(([n, text]) => [n, Buffer.from(text)]),
    );
    if (sizes.has('stats-dump') && sums.has('stats-dump')) {
      const stats = (await this.read(['stats-dump']))['stats-dump']!;
      if (sha256Hex(stats) !== sums.get('stats-dump')) {
        throw new CriuImageError(
          `stats-dump on '${this.node.id}' differs from the checksums recorded when the checkpoint was taken (tampered or damaged)`,
        );
      }
      top['stats-dump'] = stats;
    }
    return decryptedArchive(
      top,
      'checkpoint',
      members,
      (name) => this.ops.sendImageFile(this.node, this.dir, name),
      ctr,
      this.node.id,
    );
  }
}
