import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Request, Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { CheckpointRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { CHECKPOINT_STATES } from '@spotlift/store';
import { CheckpointsService, CreateCheckpoint, RestoreCheckpoint } from './checkpoints.service.js';
import { RequireRole } from '../auth/roles.decorator.js';
import { ForensicsService, SearchCheckpoint, type CheckpointInspection } from './forensics.service.js';

@ApiTags('checkpoints')
@ApiBearerAuth()
@Controller('checkpoints')
export class CheckpointsController {
  constructor(
    private readonly checkpoints: CheckpointsService,
    private readonly forensics: ForensicsService,
  ) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({
    summary:
      'Checkpoint a workload to a storage node (default: evacuation.storageNodeId): dumped there, killed once the images are verified',
  })
  @ApiBody({ schema: z.toJSONSchema(CreateCheckpoint, { io: 'input' }) as object })
  create(@Body(new ZodBody(CreateCheckpoint)) body: CreateCheckpoint): Promise<CheckpointRecord> {
    return this.checkpoints.create(body);
  }

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Checkpoints, newest first, one page at a time (filters: state, node, workload, time)' })
  @ListDocs(CHECKPOINT_STATES, ['state', 'node', 'workload'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<CheckpointRecord[]> {
    const q = parseListQuery(query, 'desc', CHECKPOINT_STATES, ['state', 'node', 'workload']);
    return sendPage(res, await this.checkpoints.page(q));
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({
    summary: 'One checkpoint: state, storage node and image directory, phases, sizes, CRIU stats, restore',
  })
  get(@Param('id') id: string): Promise<CheckpointRecord> {
    return this.checkpoints.get(id);
  }

  @Get(':id/inspect')
  @RequireRole('admin', { audited: true })
  @ApiOperation({
    summary:
      'What the stored images hold, decoded from CRIU’s image format: processes, credentials, open files, sockets, mappings, namespaces, stats (admin; audited)',
  })
  inspect(@Param('id') id: string): Promise<CheckpointInspection> {
    return this.forensics.inspect(id);
  }

  @Post(':id/search')
  @RequireRole('admin', { audited: true })
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Search the dumped memory for a pattern: each hit with process, address, mapping and bytes around it; bounded in hits and time. With `Accept: application/x-ndjson` the hits stream as found (`{"hit":…}` lines, then `{"done":…}`), and a client that goes away stops the scan (admin; audited)',
  })
  @ApiBody({ schema: z.toJSONSchema(SearchCheckpoint, { io: 'input' }) as object })
  async search(
    @Param('id') id: string,
    @Body(new ZodBody(SearchCheckpoint)) body: SearchCheckpoint,
    @Req() req: Request,
    @Res() res: Response,
  ): Promise<void> {
    if (!/application\/x-ndjson/.test(req.headers.accept ?? '')) {
      res.status(200).json(await this.forensics.search(id, body));
      return;
    }
    let gone = false;
    res.once('close', () => (gone = true));
    // One line per event; a slow reader is waited for (the scan pauses), a vanished one ends the wait.
    const line = async (event: object): Promise<void> => {
      if (gone) return;
      // A hang-up seen while writing (gone set meanwhile) must not wait for a drain that never comes.
      if (res.write(`${JSON.stringify(event)}\n`) || gone || res.destroyed) return;
      await new Promise<void>((resolve) => {
        res.once('drain', resolve);
        res.once('close', resolve);
      });
    };
    try {
      const { hits, ...done } = await this.forensics.search(id, body, {
        onOpen: () => {
          res.status(200).setHeader('content-type', 'application/x-ndjson');
          res.flushHeaders();
        },
        onHit: (hit) => line({ hit }),
        cancelled: () => gone,
      });
      res.end(`${JSON.stringify({ done: { ...done, hitCount: hits.length } })}\n`);
    } catch (error) {
      // Before the answer started: the usual error body and status. After: the last line says what failed.
      if (!res.headersSent) throw error;
      res.end(`${JSON.stringify({ error: { message: (error as Error).message } })}\n`);
    }
  }

  @Get(':id/export')
  @RequireRole('admin', { audited: true })
  @ApiOperation({
    summary:
      'The checkpoint as a tar archive in Podman’s layout (images under checkpoint/, config.dump, spec.dump, stats-dump, spotlift-export.json listing what a bare process cannot fill) (admin; audited)',
  })
  async export(@Param('id') id: string, @Res() res: Response): Promise<void> {
    const { proc, layout, filename } = await this.forensics.export(id);
    res.status(200);
    res.setHeader('content-type', 'application/x-tar');
    res.setHeader('content-disposition', `attachment; filename="${filename}"`);
    res.setHeader('x-spotlift-unfilled', layout.unfilled.map((u) => u.file).join(', '));
    proc.stdout.pipe(res);
    // A caller that hangs up stops tar on the node; a tar that fails cuts the response (no silent short file).
    res.once('close', () => proc.stdout.destroy());
    const done = await proc.done;
    if (done.code !== 0)
      res.destroy(new Error(`export failed (exit ${done.code}): ${done.stderr.trim().slice(0, 300)}`));
  }

  @Post(':id/restore')
  @RequireRole('operator')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Restore a stored checkpoint on a destination (chosen by placement when none is given); 409 unless it is stored',
  })
  @ApiBody({ schema: z.toJSONSchema(RestoreCheckpoint, { io: 'input' }) as object })
  restore(
    @Param('id') id: string,
    @Body(new ZodBody(RestoreCheckpoint)) body: RestoreCheckpoint,
  ): Promise<CheckpointRecord> {
    return this.checkpoints.restore(id, body);
  }

  @Delete(':id')
  @RequireRole('admin')
  @ApiOperation({
    summary: 'Remove the images from the storage node, then the checkpoint; 409 while a job works on it',
  })
  remove(@Param('id') id: string): Promise<{ id: string; removed: true; imageDir: string }> {
    return this.checkpoints.remove(id);
  }
}
