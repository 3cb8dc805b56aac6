import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { CheckpointRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { CHECKPOINT_STATES } from '@spotlift/store';
import { CheckpointsService, CreateCheckpoint, RestoreCheckpoint } from './checkpoints.service.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('checkpoints')
@ApiBearerAuth()
@Controller('checkpoints')
export class CheckpointsController {
  constructor(private readonly checkpoints: CheckpointsService) {}

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
