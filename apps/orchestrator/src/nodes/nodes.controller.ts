import { Body, Controller, Delete, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { NodeRecord } from '@spotlift/domain';
import { NodeSpec } from '../config/app-config.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { NODE_STATES } from '@spotlift/store';
import { NodesService } from './nodes.service.js';
import { ReleasableMarks } from '../rebalance/releasable-marks.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('nodes')
@ApiBearerAuth()
@Controller('nodes')
export class NodesController {
  constructor(
    private readonly nodes: NodesService,
    private readonly marks: ReleasableMarks,
  ) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Nodes with their last probe, oldest first, one page at a time (filters: state, time)' })
  @ListDocs(NODE_STATES, ['state'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<NodeRecord[]> {
    const q = parseListQuery(query, 'asc', NODE_STATES, ['state']);
    return sendPage(res, await this.nodes.page(q));
  }

  @Get(':id')
  @RequireRole('viewer')
  get(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.get(id);
  }

  @Post()
  @RequireRole('admin')
  @ApiOperation({
    summary: 'Register or update a node (host key pinned) and probe it over SSH',
    description: 'A failed probe answers 502 with a log id and stores nothing (an existing node keeps its record).',
  })
  @ApiBody({ schema: z.toJSONSchema(NodeSpec, { io: 'input' }) as object })
  register(@Body(new ZodBody(NodeSpec)) spec: NodeSpec): Promise<NodeRecord> {
    return this.nodes.register(spec);
  }

  @Post(':id/probe')
  @RequireRole('admin')
  @HttpCode(200)
  @ApiOperation({ summary: 'Probe a node again: CRIU version, criu check, features, kernel, CPU, memory, disk' })
  probe(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.probe(id);
  }

  @Post(':id/clear-notice')
  @RequireRole('admin')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Clear a spurious notice: a draining or terminating node becomes ready (409 while evacuating)',
  })
  clearNotice(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.clearNotice(id);
  }

  @Post(':id/drain')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Take a node out of placement: draining, nothing lands on it, nothing on it moves (409 while evacuating)',
  })
  drain(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.drain(id);
  }

  @Post(':id/undrain')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Lift a drain: ready again unless a notice holds the node (409 while evacuating)',
  })
  undrain(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.undrain(id);
  }

  @Delete(':id/releasable')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({
    summary: 'Keep a node rebalancing marked releasable: the mark (and its Kubernetes annotation) is removed',
  })
  keep(@Param('id') id: string): Promise<NodeRecord> {
    return this.marks.clear(id, 'DELETE /nodes/:id/releasable');
  }

  @Delete(':id')
  @RequireRole('admin')
  @HttpCode(204)
  @ApiOperation({ summary: 'Forget a node (409 while a workload, unfinished migration or checkpoint refers to it)' })
  remove(@Param('id') id: string): Promise<void> {
    return this.nodes.remove(id);
  }
}
