/**
 * The streamed memory search (POST /checkpoints/:id/search, `Accept: application/x-ndjson`): the controller and
 * the service over the real fixture dump (libs/criu/test/fixtures/forensic) served by fake node operations, and
 * a response object standing in for Express. The lab run: test/checkpoint-encryption.e2e-spec.ts.
 */
import { EventEmitter } from 'node:events';
import type { Request, Response } from 'express';
import type { CheckpointRecord } from '@spotlift/domain';
import { aNode, FakeProcessOps } from '@spotlift/testing';
import type { CheckpointsService } from './checkpoints.service.js';
import type { CheckpointRepository, NodeRepository } from '@spotlift/store';
import { loadImages } from '../../../../libs/criu/test/forensic-fixture.js';
import { CheckpointsController } from './checkpoints.controller.js';
import { ForensicsService, SearchCheckpoint } from './forensics.service.js';

const DIR = '/srv/checkpoints/w-1/cp-1';
const files = loadImages();
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
const cp = {
  id: 'cp-1',
  workloadId: 'w-1',
  sourceNodeId: 'node-a',
  storageNodeId: 'node-c',
  imageDir: DIR,
  state: 'stored',
  phases: [],
  criu: {},
  bytes: { pages: 0, images: 0 },
  createdAt: '2026-12-07T00:00:00.000Z',
  updatedAt: '2026-12-07T00:00:00.000Z',
} satisfies CheckpointRecord;

/** What Express's response does here: status, headers, write/end, and 'close' when the client hangs up. */
class FakeResponse extends EventEmitter {
  lines: string[] = [];
  headersSent = false;
  ended = false;
  destroyed = false;
  status(code: number) {
    this.statusCode = code;
    return this;
  }
  statusCode = 0;
  setHeader() {
    return this;
  }
  flushHeaders() {
    this.headersSent = true;
  }
  write(chunk: string) {
    this.lines.push(chunk);
    return true;
  }
  end(chunk?: string) {
    if (chunk) this.lines.push(chunk);
    this.ended = true;
  }
}

function setup() {
  const ops = new FakeProcessOps();
  ops
    .on(
      'listImageFiles',
      ok(
        Object.entries(files)
          .map(([n, b]) => `FILE ${b.length} ${n}`)
          .join('\n'),
      ),
    )
    .on('readImageFiles', (_n, _d, names) =>
      ok(names.map((n) => `IMG ${n} ${Buffer.from(files[n]!).toString('base64')}`).join('\n')),
    )
    .on('readImageRange', (_n, _d, name, offset, length) =>
      ok(Buffer.from(files[name]!.subarray(offset, offset + length)).toString('base64')),
    );
  const forensics = new ForensicsService(
    { get: () => Promise.resolve(cp) } as unknown as CheckpointRepository,
    { get: (id: string) => Promise.resolve(aNode(id)) } as unknown as NodeRepository,
    ops.asNodeOps(),
    { now: () => new Date() },
  );
  const controller = new CheckpointsController({} as CheckpointsService, forensics);
  const req = { headers: { accept: 'application/x-ndjson' } } as Request;
  const body = SearchCheckpoint.parse({ pattern: 'SPOTLIFT-FORENSIC-NEEDLE-4711', context: 4 });
  return { ops, controller, req, body };
}

describe('POST /checkpoints/:id/search as a stream', () => {
  it('answers one line per hit as found, then the summary', async () => {
    const { controller, req, body } = setup();
    const res = new FakeResponse();
    await controller.search('cp-1', body, req, res as unknown as Response);
    const events = res.lines.map((l) => JSON.parse(l) as Record<string, { pid?: number; hitCount?: number }>);
    expect(res.statusCode).toBe(200);
    expect(events.filter((e) => e.hit).map((e) => e.hit!.pid)).toEqual(expect.arrayContaining([1, 2]));
    expect(events.at(-1)!.done).toMatchObject({ hitCount: events.length - 1, checkpoint: 'cp-1' });
    expect(res.lines.every((l) => l.endsWith('\n'))).toBe(true);
  });

  it('a client that hangs up after the first hit stops the scan: no further page is read', async () => {
    const { ops, controller, req, body } = setup();
    const res = new FakeResponse();
    const write = res.write.bind(res);
    res.write = (chunk: string) => {
      write(chunk);
      res.emit('close');
      return false;
    };
    await controller.search('cp-1', body, req, res as unknown as Response);
    expect(res.lines.filter((l) => l.startsWith('{"hit"'))).toHaveLength(1);
    expect(JSON.parse(res.lines.at(-1)!)).toMatchObject({ done: { cancelled: true, hitCount: 1 } });
    // pid 1's pages held the first hit; pid 2's pages file was never read
    expect(ops.argsOf('readImageRange').map((a) => a[2])).not.toContain('pages-2.img');
  });

  it('an unknown checkpoint is the usual error, before any answer started', async () => {
    const { req, body } = setup();
    const res = new FakeResponse();
    const missing = new ForensicsService(
      { get: () => Promise.resolve(undefined) } as unknown as CheckpointRepository,
      {} as NodeRepository,
      new FakeProcessOps().asNodeOps(),
      { now: () => new Date() },
    );
    const c = new CheckpointsController({} as CheckpointsService, missing);
    await expect(c.search('cp-x', body, req, res as unknown as Response)).rejects.toThrow(/cp-x/);
    expect(res.headersSent).toBe(false);
  });
});
