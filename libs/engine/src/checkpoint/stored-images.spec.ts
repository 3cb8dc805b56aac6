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
import { PassThrough, Readable } from 'node:stream';
import { extract } from 'tar-stream';
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

    describe('export (the archive built in the orchestrator: the storage node has no key)', () => {
      const layoutInput = {
        checkpointId: 'cp-1',
        workloadId: 'wl-1',
        createdAt: '2026-01-01T00:00:00.000Z',
        mode: 'forensic' as const,
        sourceNodeId: 'node-a',
      };
      /** The stored file's bytes as `cat` on the node sends them, in small chunks (the decryption spans them). */
      const serving = (node: ReturnType<typeof open>, served = stored) => {
        const streams: Readable[] = [];
        node.ops.on('sendImageFile', (_n, _dir, name) => {
          const bytes = Buffer.from(served[name]!);
          const chunks = Array.from({ length: Math.ceil(bytes.length / 1000) }, (_x, i) =>
            bytes.subarray(i * 1000, (i + 1) * 1000),
          );
          const stdout = Readable.from(chunks, { objectMode: false });
          streams.push(stdout);
          return { stdin: new PassThrough(), stdout, done: Promise.resolve({ code: 0, stderr: '' }) };
        });
        return streams;
      };
      /** The archive's members, read back with tar-stream's parser. */
      const members = async (stream: Readable) => {
        const out: Record<string, Buffer> = {};
        const ex = extract();
        const read = (async () => {
          for await (const entry of ex) {
            const parts: Buffer[] = [];
            for await (const c of entry) parts.push(c as Buffer);
            out[entry.header.type === 'directory' ? `${entry.header.name}/` : entry.header.name] = Buffer.concat(parts);
          }
        })();
        for await (const c of stream) ex.write(c);
        ex.end(undefined);
        await read;
        return out;
      };

      it('holds every image decrypted under checkpoint/, the layout files and stats-dump at the top; no tar on the node', async () => {
        const node = open();
        serving(node);
        const { proc, layout } = await node.images.export(layoutInput, `${DIR}.export-x`);
        const got = await members(proc.stdout);
        expect(await proc.done).toEqual({ code: 0, stderr: '' });
        expect(
          Object.keys(got)
            .filter((n) => !n.startsWith('checkpoint'))
            .sort(),
        ).toEqual(['config.dump', 'spec.dump', 'spotlift-export.json', 'stats-dump']);
        expect(got['config.dump']!.toString()).toBe(layout.files['config.dump']);
        expect(got['checkpoint/']).toBeDefined();
        for (const [name, plain] of Object.entries(files))
          expect(got[`checkpoint/${name}`]).toEqual(Buffer.from(plain));
        expect(got['checkpoint/pages-1.img']!.includes('SPOTLIFT-FORENSIC-NEEDLE-4711')).toBe(true);
        expect(node.ops.argsOf('exportArchive')).toHaveLength(0);
      });

      it('a page changed on the storage node cuts the archive: an error, never a whole-looking archive', async () => {
        const pages = new Uint8Array(stored['pages-1.img']!);
        pages[5000]! ^= 1;
        const node = open({ ...stored, 'pages-1.img': pages });
        serving(node, { ...stored, 'pages-1.img': pages });
        const { proc } = await node.images.export(layoutInput, `${DIR}.export-x`);
        await expect(members(proc.stdout)).rejects.toThrow();
        const done = await proc.done;
        expect(done.code).toBe(1);
        expect(done.stderr).toMatch(
          /pages-1\.img on 'node-c' differs from the checksums recorded .* the export is cut/,
        );
      });

      it('a file sent longer than listed is refused as it arrives', async () => {
        const longer = { ...stored, 'pages-2.img': Buffer.concat([stored['pages-2.img']!, Buffer.alloc(10)]) };
        const node = open(longer);
        serving(node, longer);
        const { proc } = await node.images.export(layoutInput, `${DIR}.export-x`);
        await expect(members(proc.stdout)).rejects.toThrow();
        expect((await proc.done).stderr).toMatch(/pages-2\.img from 'node-c' is longer than its listed/);
      });

      it('a consumer that goes away ends the stream on the node and the building', async () => {
        const node = open();
        const streams = serving(node);
        const { proc } = await node.images.export(layoutInput, `${DIR}.export-x`);
        for await (const _c of proc.stdout) break; // the first chunk, then hang up
        const done = await proc.done;
        expect(done.code).toBe(1);
        expect(streams.length).toBeLessThan(Object.keys(files).length);
        expect(streams.every((s) => s.destroyed)).toBe(true);
      });
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
