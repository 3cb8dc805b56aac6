import { type CheckpointRecord, ConflictError } from '@spotlift/domain';
import type { NodeOps } from '@spotlift/engine';
import type { CheckpointRepository, NodeRepository } from '@spotlift/store';
import { ForensicsService } from './forensics.service.js';

/** A container's checkpoint as the checkpoints processor stores it: Podman's archive and the image, no CRIU files. */
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

describe('ForensicsService on a container checkpoint', () => {
  const nodeCommands: string[] = [];
  const service = new ForensicsService(
    { get: () => Promise.resolve(containerCheckpoint) } as unknown as CheckpointRepository,
    { get: (id: string) => Promise.resolve({ id, host: '10.0.0.2' }) } as unknown as NodeRepository,
    {
      run: (_node: unknown, cmd: string) => {
        nodeCommands.push(cmd);
        return Promise.resolve({ code: 0, stdout: '', stderr: '' });
      },
    } as unknown as NodeOps,
    { now: () => new Date('2026-12-07T00:00:00.000Z') },
  );

  it.each([
    ['inspect', () => service.inspect('cp-1')],
    [
      'search',
      () => service.search('cp-1', { pattern: 'x', encoding: 'utf8', maxHits: 1, context: 0, timeoutMs: 1000 }),
    ],
    ['export', () => service.export('cp-1')],
  ])('%s answers a clear conflict and runs nothing on the storage node', async (_name, call) => {
    const err = await call().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConflictError);
    expect((err as Error).message).toMatch(
      /^inspection of container checkpoints is not available yet: .*checkpoint\.tar/,
    );
    expect(nodeCommands).toEqual([]);
  });
});
