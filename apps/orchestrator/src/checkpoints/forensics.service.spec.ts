import { createCipheriv, createHash, pbkdf2Sync, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { CheckpointRecord } from '@spotlift/domain';
import { CriuImageError } from '@spotlift/criu';
import { CheckpointKeyError, newDataKey, type NodeOps } from '@spotlift/engine';
import type { CheckpointRepository, NodeRepository } from '@spotlift/store';
import type { AppConfig } from '../config/app-config.js';
import { ForensicsService } from './forensics.service.js';

/**
 * A container's checkpoint as the checkpoints processor stores it: Podman's archive and the image. How its
 * CRIU images are unpacked and read is libs/engine checkpoint/container-images.spec.ts; here, what the service
 * asks of the storage node.
 */
const containerCheckpoint = {
  id: 'cp-1',
  kind: 'podman',
  container: { id: 'c'.repeat(64), name: 'web', image: { name: 'web:1', id: 'i'.repeat(64) }, volumes: [], ports: [] },
  workloadId: 'w-1',
  sourceNodeId: 'node-a',
  storageNodeId: 'node-b',
  imageDir: '/srv/checkpoints/w-1/cp-1',
  state: 'stored',
  phases: [],
  criu: {},
  bytes: { pages: 0, images: 0 },
  createdAt: '2026-12-07T00:00:00.000Z',
  updatedAt: '2026-12-07T00:00:00.000Z',
} satisfies CheckpointRecord;

function service(cp: CheckpointRecord, stored?: Buffer, master?: Uint8Array) {
  const calls: unknown[][] = [];
  const ops = new Proxy(
    {},
    {
      get:
        (_t, op: string) =>
        (...args: unknown[]) => {
          calls.push([op, ...args.slice(1)]);
          if (op === 'listImageFiles' && stored)
            return Promise.resolve({ code: 0, stdout: `FILE ${stored.length} checkpoint.tar\n`, stderr: '' });
          return Promise.resolve(
            op === 'sendImageFile'
              ? { stdout: Readable.from(stored ? [stored] : []), done: Promise.resolve({ code: 0, stderr: '' }) }
              : { code: 0, stdout: '', stderr: '' },
          );
        },
    },
  ) as NodeOps;
  const forensics = new ForensicsService(
    { get: () => Promise.resolve(cp) } as unknown as CheckpointRepository,
    { get: (id: string) => Promise.resolve({ id, host: '10.0.0.2' }) } as unknown as NodeRepository,
    ops,
    { now: () => new Date('2026-12-07T00:00:00.000Z') },
    master ? ({ checkpointKey: master } as AppConfig) : undefined,
  );
  return { forensics, calls };
}

describe('ForensicsService on a container checkpoint', () => {
  it('exports Podman’s archive as it was stored (it is the layout checkpointctl reads)', async () => {
    const { forensics, calls } = service(containerCheckpoint);
    const out = await forensics.export('cp-1');
    expect(calls).toEqual([['sendImageFile', '/srv/checkpoints/w-1/cp-1', 'checkpoint.tar']]);
    expect(out).toMatchObject({ layout: { files: {}, unfilled: [] }, filename: 'checkpoint-w-1-cp-1.tar' });
  });

  it.each([
    ['inspect', (f: ForensicsService) => f.inspect('cp-1')],
    [
      'search',
      (f: ForensicsService) =>
        f.search('cp-1', { pattern: 'x', encoding: 'utf8', maxHits: 1, context: 0, timeoutMs: 1000 }),
    ],
  ])('%s of one with no recorded archive sum: an image error, nothing run on the storage node', async (_n, call) => {
    const { forensics, calls } = service(containerCheckpoint);
    const err = await call(forensics).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CriuImageError);
    expect((err as Error).message).toMatch(/recorded no sha256 of its archive/);
    expect(calls).toEqual([]);
  });
});

describe('ForensicsService on an encrypted container checkpoint', () => {
  const master = randomBytes(32);
  const { dataKey, encryption } = newDataKey(master);
  const plain = Buffer.from('podman checkpoint archive bytes '.repeat(500));
  /** What the relay stored: openssl's format (salt header, AES-256-CTR under the pbkdf2 key). */
  const salt = randomBytes(8);
  const k = pbkdf2Sync(dataKey, salt, 10_000, 48, 'sha256');
  const c = createCipheriv('aes-256-ctr', k.subarray(0, 32), k.subarray(32));
  const stored = Buffer.concat([Buffer.from('Salted__'), salt, c.update(plain), c.final()]);
  const sha256 = createHash('sha256').update(stored).digest('hex');
  const sums = `${sha256}  checkpoint.tar`;
  const cp = { ...containerCheckpoint, sha256, encryption: { ...encryption, sums } } satisfies CheckpointRecord;

  it('exports Podman’s archive decrypted here, as it streams from the storage node', async () => {
    const { forensics, calls } = service(cp, stored, master);
    const out = await forensics.export('cp-1');
    const parts: Buffer[] = [];
    for await (const chunk of out.proc.stdout) parts.push(chunk as Buffer);
    expect(Buffer.concat(parts).equals(plain)).toBe(true);
    expect(await out.proc.done).toEqual({ code: 0, stderr: '' });
    expect(calls.map(([op]) => op)).toEqual(['listImageFiles', 'sendImageFile']);
  });

  // How it is unpacked in the orchestrator and read: libs/engine checkpoint/container-images.spec.ts.
  it.each([
    ['another key', randomBytes(32), /encrypted under checkpoint key/],
    ['no key', undefined, /no checkpoint key configured/],
  ])('inspect with %s: a checkpoint_key error (409), nothing run on the storage node', async (_n, key, why) => {
    const { forensics, calls } = service(cp, stored, key);
    const err = await forensics.inspect('cp-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointKeyError);
    expect(err).toMatchObject({ code: 'checkpoint_key', message: expect.stringMatching(why) });
    expect(calls).toEqual([]);
  });
});
