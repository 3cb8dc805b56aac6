/**
 * Reading a stored checkpoint from its storage node, through the fake node operations answering from the
 * real fixture dump (libs/criu/test/fixtures/forensic): what is listed bounds what is read, and a storage
 * node that answers otherwise fails the read with an image error. The commands behind listImageFiles,
 * readImageFiles and readImageRange are golden in node-ops/process/process-ops.golden.spec.ts; the lab run:
 * test/forensics.e2e-spec.ts.
 */
import { aNode, FakeProcessOps } from '@spotlift/testing';
import { patternBytes } from '@spotlift/criu';
import { loadImages, WORKDIR } from '../../../criu/test/forensic-fixture.js';
import { createCipheriv, createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { CheckpointRecord } from '@spotlift/domain';
import { STORED_IMAGE_LIMITS, StoredImages } from './stored-images.js';
import { isEncryptedFile, newDataKey } from './checkpoint-crypto.js';

const DIR = '/var/lib/spotlift/checkpoints/wl-1/cp-1';
const files = loadImages();
const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });

function storageNode(over: { list?: string; files?: Record<string, Uint8Array> } = {}) {
  const ops = new FakeProcessOps();
  const served = over.files ?? files;
  const list =
    over.list ??
    Object.entries(files)
      .map(([n, b]) => `FILE ${b.length} ${n}`)
      .join('\n');
  ops
    .on('listImageFiles', ok(`${list}\n`), { node: 'node-c', when: (_n, dir) => dir === DIR })
    .on(
      'readImageFiles',
      (_n, _dir, names) => ok(names.map((n) => `IMG ${n} ${served[n] ? b64(served[n]) : ''}`).join('\n')),
      { node: 'node-c', when: (_n, dir) => dir === DIR },
    )
    .on(
      'readImageRange',
      (_n, _dir, name, offset, length) => ok(b64(served[name]!.subarray(offset, offset + length))),
      {
        node: 'node-c',
        when: (_n, dir) => dir === DIR,
      },
    );
  return { ops, images: new StoredImages(ops.asNodeOps(), aNode('node-c'), DIR) };
}

describe('StoredImages', () => {
  it('inspects: lists, reads the metadata images in one round trip, pages only where command lines are', async () => {
    const { ops, images } = storageNode();
    const { inspection, files: listed } = await images.inspect();
    expect(listed['pages-1.img']).toBe(61440);
    expect(inspection.processes[0]!.cmdline?.[0]).toBe(`${WORKDIR}/workload`);
    const reads = ops.argsOf('readImageFiles', 'node-c');
    expect(reads).toHaveLength(1);
    expect(reads[0]![1].filter((n) => n.startsWith('pages-'))).toEqual([]);
    // one 1 MiB block of each pages file covers its command line (a 60 KiB file: the whole file)
    expect(ops.argsOf('readImageRange', 'node-c')).toHaveLength(2);
  });

  it('searches the pages over SSH in bounded blocks', async () => {
    const { images } = storageNode();
    const r = await images.search(patternBytes('SPOTLIFT-FORENSIC-NEEDLE-4711', 'utf8'), {
      maxHits: 10,
      context: 4,
      expired: () => false,
    });
    expect(r.hits.filter((h) => h.mapping.endsWith('[heap]')).map((h) => h.pid)).toEqual([1, 2]);
  });

  it('a file that arrives with another size than listed is an image error', async () => {
    const { images } = storageNode({ files: { ...files, 'core-1.img': files['core-1.img']!.subarray(0, 100) } });
    await expect(images.inspect()).rejects.toThrow("core-1.img from 'node-c' arrived with 100 bytes, listed as 2324");
  });

  it('a metadata image listed larger than the bound is not read at all', async () => {
    const list = Object.entries(files)
      .map(([n, b]) => `FILE ${n === 'mm-1.img' ? STORED_IMAGE_LIMITS.maxFileBytes + 1 : b.length} ${n}`)
      .join('\n');
    const { ops, images } = storageNode({ list });
    await expect(images.inspect()).rejects.toThrow(/mm-1.img on 'node-c' is 4194305 bytes; a metadata image over/);
    expect(ops.argsOf('readImageFiles')).toHaveLength(0);
  });

  it('names that are not plain image names are ignored; a missing pstree is said plainly', async () => {
    const list = Object.entries(files)
      .map(([n, b]) => `FILE ${b.length} ${n === 'pstree.img' ? '../pstree.img' : n}`)
      .join('\n');
    const { images } = storageNode({ list });
    await expect(images.inspect()).rejects.toThrow('pstree.img is missing from the images');
  });

  describe('an encrypted checkpoint (decrypted in the orchestrator)', () => {
    /** What `openssl enc -aes-256-ctr -pbkdf2 -iter 10000 -md sha256 -pass stdin` writes (golden-checked in checkpoint-crypto.spec.ts). */
    const opensslEnc = (pass: string, plain: Uint8Array) => {
      const salt = randomBytes(8);
      const k = pbkdf2Sync(pass, salt, 10_000, 48, 'sha256');
      const c = createCipheriv('aes-256-ctr', k.subarray(0, 32), k.subarray(32));
      return new Uint8Array(Buffer.concat([Buffer.from('Salted__'), salt, c.update(plain), c.final()]));
    };
    const master = randomBytes(32);
    const { dataKey, encryption } = newDataKey(master);
    const stored = Object.fromEntries(
      Object.entries(files).map(([n, b]) => [n, isEncryptedFile(n, encryption) ? opensslEnc(dataKey, b) : b]),
    );
    const sums = Object.entries(stored)
      .map(([n, b]) => `${createHash('sha256').update(b).digest('hex')}  ${n}`)
      .join('\n');
    const cp = { id: 'cp-1', imageDir: DIR, encryption: { ...encryption, sums } } as CheckpointRecord;
    const open = (served = stored, key: Uint8Array = master) => {
      const list = Object.entries(stored)
        .map(([n, b]) => `FILE ${b.length} ${n}`)
        .join('\n');
      const node = storageNode({ files: served, list });
      return { ...node, images: StoredImages.of(node.ops.asNodeOps(), aNode('node-c'), cp, key) };
    };

    it('inspects and searches as in clear: plaintext sizes, command lines and hits from decrypted pages', async () => {
      const { images } = open();
      const { inspection, files: listed } = await images.inspect();
      expect(listed['pages-1.img']).toBe(61440);
      expect(inspection.processes[0]!.cmdline?.[0]).toBe(`${WORKDIR}/workload`);
      const r = await images.search(patternBytes('SPOTLIFT-FORENSIC-NEEDLE-4711', 'utf8'), {
        maxHits: 10,
        context: 4,
        expired: () => false,
      });
      expect(r.hits.filter((h) => h.mapping.endsWith('[heap]')).map((h) => h.pid)).toEqual([1, 2]);
      // the storage node holds no plaintext needle
      expect(Buffer.from(stored['pages-1.img']!).includes('SPOTLIFT-FORENSIC-NEEDLE-4711')).toBe(false);
    });

    it('a metadata image changed on the storage node is refused against the recorded sums', async () => {
      const core = new Uint8Array(stored['core-1.img']!);
      core[40]! ^= 1;
      const { images } = open({ ...stored, 'core-1.img': core });
      await expect(images.inspect()).rejects.toThrow(
        "core-1.img on 'node-c' differs from the checksums recorded when the checkpoint was taken",
      );
    });

    it('another master key opens nothing and reads nothing', () => {
      const node = storageNode({ files: stored });
      expect(() => StoredImages.of(node.ops.asNodeOps(), aNode('node-c'), cp, randomBytes(32))).toThrow(
        /encrypted under checkpoint key/,
      );
      expect(node.ops.argsOf('listImageFiles')).toHaveLength(0);
    });
  });
});
