import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { NodeRecord } from '@spotlift/domain';
import { NodeSpec } from '../config/app-config.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { NodesService } from './nodes.service.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('nodes')
@ApiBearerAuth()
@Controller('nodes')
export class NodesController {
  constructor(private readonly nodes: NodesService) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'List nodes with their last probe' })
  list(): Promise<NodeRecord[]> {
    return this.nodes.list();
  }

  @Get(':id')
  @RequireRole('viewer')
  get(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.get(id);
  }

  @Post()
  @RequireRole('admin')
  @ApiOperation({ summary: 'Register or update a node (host key pinned) and probe it over SSH' })
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
}
