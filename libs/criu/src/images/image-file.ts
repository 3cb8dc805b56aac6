/**
 * CRIU's image framing, decoded with CRIU's own protos (criu-protos.ts, verbatim).
 *
 * An image is `u32 magic` (inventory), or `u32 IMG_COMMON | IMG_SERVICE, u32 magic`, then entries of
 * `u32 size` + a protobuf message of that size, to the end of the file (CRIU's criu/protobuf.c and
 * lib/pycriu/images/images.py). Everything is bounded: an image from a node is untrusted input, so a
 * size beyond the file, an entry beyond MAX_ENTRY_BYTES, too many entries or a payload that does not
 * decode is a CriuImageError naming the file and the offset, never a crash or an unbounded allocation.
 */
import protobuf from 'protobufjs';
import { CriuImageError } from '../errors.js';
import { CRIU_PROTOS } from './criu-protos.js';

const IMG_COMMON = 0x54564319;
const IMG_SERVICE = 0x55105940;

/** The image kinds the inspector reads: magic (criu/include/magic.h) and the entry message. */
export const IMAGE_KINDS = {
  inventory: { magic: 0x58313116, type: 'inventory_entry', framed: false },
  pstree: { magic: 0x50273030, type: 'pstree_entry', framed: true },
  core: { magic: 0x55053847, type: 'core_entry', framed: true },
  ids: { magic: 0x54432030, type: 'task_kobj_ids_entry', framed: true },
  mm: { magic: 0x57492820, type: 'mm_entry', framed: true },
  /** The first entry is a pagemap_head (which pages-<id>.img holds the pages), the others pagemap_entry. */
  pagemap: { magic: 0x56084025, type: 'pagemap_entry', framed: true, head: 'pagemap_head' },
  fdinfo: { magic: 0x56213732, type: 'fdinfo_entry', framed: true },
  files: { magic: 0x56303138, type: 'file_entry', framed: true },
  fs: { magic: 0x51403912, type: 'fs_entry', framed: true },
  mnts: { magic: 0x55563928, type: 'mnt_entry', framed: true },
  utsns: { magic: 0x54473203, type: 'utsns_entry', framed: true },
  stats: { magic: 0x57093306, type: 'stats_entry', framed: true },
} as const;
export type ImageKind = keyof typeof IMAGE_KINDS;

/** Bounds on untrusted images: far above what a real dump writes, far below what hurts the orchestrator. */
export const MAX_ENTRY_BYTES = 4 << 20;
export const MAX_ENTRIES = 1_000_000;

let root: protobuf.Root | undefined;
/** CRIU's protos parsed once; keepCase: field names stay CRIU's (mm_arg_start), as crit prints them. */
function protos(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    for (const text of Object.values(CRIU_PROTOS)) protobuf.parse(text, r, { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

const hex = (n: number) => `0x${n.toString(16).padStart(8, '0')}`;

/** A decoded entry: uint64 as decimal strings (exact), enums as CRIU's names, bytes as Uint8Array. */
export type Entry = Record<string, unknown>;

/** All entries of one image. `name` is the file name, quoted by every error. */
export function readImage(name: string, buf: Uint8Array, kind: ImageKind): Entry[] {
  const spec: { magic: number; type: string; framed: boolean; head?: string } = IMAGE_KINDS[kind];
  const { magic, type, framed } = spec;
  if (!(buf instanceof Uint8Array)) throw new CriuImageError(`${name}: expected the file's bytes, got ${typeof buf}`);
  const head = framed ? 8 : 4;
  if (buf.length < head) {
    throw new CriuImageError(
      `${name} is truncated: ${buf.length} bytes, shorter than its ${head}-byte magic header; copy it again`,
      { file: name, length: buf.length },
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const m0 = view.getUint32(0, true);
  const m1 = framed ? view.getUint32(4, true) : m0;
  const outer = kind === 'stats' ? IMG_SERVICE : IMG_COMMON;
  if ((framed && m0 !== outer) || m1 !== magic) {
    throw new CriuImageError(
      `${name} is not a CRIU ${kind} image: magic ${framed ? `${hex(m0)} ${hex(m1)}` : hex(m0)}, expected ${framed ? `${hex(outer)} ${hex(magic)}` : hex(magic)}`,
      { file: name, magic: hex(m1) },
    );
  }
  const messages = { head: protos().lookupType(spec.head ?? type), rest: protos().lookupType(type) };
  const entries: Entry[] = [];
  let off = head;
  while (off < buf.length) {
    if (entries.length >= MAX_ENTRIES) {
      throw new CriuImageError(`${name} holds more than ${MAX_ENTRIES} entries; refused as not from a real dump`, {
        file: name,
      });
    }
    if (buf.length - off < 4) {
      throw new CriuImageError(
        `${name} is truncated at byte ${off}: ${buf.length - off} byte(s) where an entry's 4-byte size belongs`,
        { file: name, offset: off },
      );
    }
    const size = view.getUint32(off, true);
    if (size > MAX_ENTRY_BYTES) {
      throw new CriuImageError(
        `${name}: the entry at byte ${off} announces ${size} bytes, more than the ${MAX_ENTRY_BYTES} a CRIU entry may have`,
        { file: name, offset: off, size },
      );
    }
    if (size > buf.length - off - 4) {
      throw new CriuImageError(
        `${name} is truncated: the entry at byte ${off} announces ${size} bytes but only ${buf.length - off - 4} follow`,
        { file: name, offset: off, size },
      );
    }
    const message = entries.length === 0 ? messages.head : messages.rest;
    try {
      const decoded = message.decode(buf.subarray(off + 4, off + 4 + size));
      entries.push(message.toObject(decoded, { longs: String, enums: String, defaults: false }));
    } catch (err) {
      throw new CriuImageError(
        `${name}: the ${message.name} at byte ${off} does not decode (${(err as Error).message}); the file is corrupt`,
        { file: name, offset: off },
      );
    }
    off += 4 + size;
  }
  return entries;
}

/** The single entry of an image that holds exactly one (inventory, core, mm, ids, fs). */
export function readOne(name: string, buf: Uint8Array, kind: ImageKind): Entry {
  const entries = readImage(name, buf, kind);
  if (entries.length !== 1) {
    throw new CriuImageError(`${name} holds ${entries.length} entries; a ${kind} image holds exactly one`, {
      file: name,
    });
  }
  return entries[0]!;
}

/** A uint64 decoded as a string, as a number: exact below 2^53 (addresses and sizes on x86_64 are). */
export function u64(value: unknown, what: string): number {
  if (value === undefined) return 0;
  const big = BigInt(value as string | number);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CriuImageError(`${what} is ${big.toString()}, beyond 2^53-1: not a value a real dump holds`);
  }
  return Number(big);
}
