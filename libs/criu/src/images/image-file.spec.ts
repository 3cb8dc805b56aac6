import { loadImages } from '../../test/forensic-fixture.js';
import { CriuImageError } from '../errors.js';
import { MAX_ENTRY_BYTES, readImage, readOne } from './image-file.js';
import { inspectImages } from './inspect.js';
import { readPagemap } from './pages.js';

const files = loadImages();
const u32 = (...words: number[]) => {
  const b = new Uint8Array(words.length * 4);
  const v = new DataView(b.buffer);
  words.forEach((w, i) => v.setUint32(i * 4, w, true));
  return b;
};
const cat = (...parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const PSTREE_HEAD = u32(0x54564319, 0x50273030);
const pstree = files['pstree.img']!;

describe('readImage: hostile or damaged images are CriuImageErrors that say what is wrong', () => {
  it('reads the real pstree.img', () => {
    expect(readImage('pstree.img', pstree, 'pstree').map((e) => e.pid)).toEqual([1, 2]);
  });

  it.each([
    ['empty', new Uint8Array(), /truncated: 0 bytes, shorter than its 8-byte magic header/],
    ['a cut header', pstree.subarray(0, 6), /truncated: 6 bytes/],
    ['another kind (core as pstree)', files['core-1.img']!, /not a CRIU pstree image: magic 0x54564319 0x55053847/],
    ['the service magic (stats-dump)', files['stats-dump']!, /not a CRIU pstree image: magic 0x55105940/],
    ['text', new TextEncoder().encode('hello world, not an image'), /not a CRIU pstree image/],
    ['a cut size field', cat(PSTREE_HEAD, new Uint8Array([1, 0])), /truncated at byte 8: 2 byte\(s\)/],
    ['an entry beyond the end', pstree.subarray(0, pstree.length - 3), /announces 10 bytes but only 7 follow/],
    [
      'an entry larger than any real one',
      cat(PSTREE_HEAD, u32(MAX_ENTRY_BYTES + 1)),
      /more than the 4194304 a CRIU entry may have/,
    ],
    ['an entry of 4 GiB', cat(PSTREE_HEAD, u32(0xffffffff)), /announces 4294967295 bytes/],
    [
      'garbage protobuf',
      cat(PSTREE_HEAD, u32(3), new Uint8Array([0xff, 0xff, 0xff])),
      /pstree_entry at byte 8 does not decode/,
    ],
    [
      'a missing required field',
      cat(PSTREE_HEAD, u32(2), new Uint8Array([0x08, 0x01])),
      /does not decode \(missing required 'ppid'/,
    ],
  ])('%s', (_what, buf, message) => {
    expect(() => readImage('pstree.img', buf, 'pstree')).toThrow(CriuImageError);
    expect(() => readImage('pstree.img', buf, 'pstree')).toThrow(message);
  });

  it('a single-entry image with two entries is refused', () => {
    const core = files['core-1.img']!;
    expect(() => readOne('core-1.img', cat(core, core.subarray(8)), 'core')).toThrow(
      'core-1.img holds 2 entries; a core image holds exactly one',
    );
  });

  it('inventory.img has its own one-magic header', () => {
    expect(readOne('inventory.img', files['inventory.img']!, 'inventory').img_version).toBe(2);
    expect(() => readOne('inventory.img', u32(0x12345678), 'inventory')).toThrow(/expected 0x58313116/);
  });
});

describe('readPagemap', () => {
  it('gives the runs and where their pages lie in pages-<id>.img', () => {
    const map = readPagemap('pagemap-1.img', files['pagemap-1.img']!);
    expect(map.pagesFile).toBe('pages-1.img');
    expect(map.presentBytes).toBe(files['pages-1.img']!.length);
    expect(map.runs.every((r) => r.where === 'pages')).toBe(true);
    expect(map.runs.map((r) => r.offset)).toEqual(
      map.runs.reduce<number[]>((acc, r, i) => [...acc, i === 0 ? 0 : acc[i - 1]! + map.runs[i - 1]!.pages * 4096], []),
    );
  });

  it('refuses runs out of order (which would let a node point two addresses at one page)', () => {
    const buf = files['pagemap-1.img']!;
    const entries = readImage('pagemap-1.img', buf, 'pagemap');
    expect(entries.length).toBeGreaterThan(2);
    // swap the first two pagemap_entry records
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const headLen = view.getUint32(8, true);
    const e1 = 12 + headLen;
    const l1 = view.getUint32(e1, true);
    const e2 = e1 + 4 + l1;
    const l2 = view.getUint32(e2, true);
    const swapped = cat(
      buf.subarray(0, e1),
      buf.subarray(e2, e2 + 4 + l2),
      buf.subarray(e1, e2),
      buf.subarray(e2 + 4 + l2),
    );
    expect(() => readPagemap('pagemap-1.img', swapped)).toThrow(/entry 2 .* overlaps the previous one/);
  });

  it('a pagemap without its head is refused', () => {
    expect(() => readPagemap('pagemap-1.img', u32(0x54564319, 0x56084025))).toThrow(/no pagemap_head/);
  });
});

describe('inspectImages refuses an incomplete image set', () => {
  it.each(['inventory.img', 'pstree.img', 'core-2.img'])('without %s', async (name) => {
    const { [name]: _gone, ...rest } = files;
    await expect(inspectImages(rest)).rejects.toThrow(`${name} is missing from the images`);
  });
});
