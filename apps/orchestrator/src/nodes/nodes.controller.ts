import { Body, Controller, Get, HttpCode, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { NodeRecord } from '@spotlift/domain';
import { NodeSpec } from '../config/app-config.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { NodesService } from './nodes.service.js';

@ApiTags('nodes')
@ApiBearerAuth()
@Controller('nodes')
export class NodesController {
  constructor(private readonly nodes: NodesService) {}

  @Get()
  @ApiOperation({ summary: 'List nodes with their last probe' })
  list(): Promise<NodeRecord[]> {
    return this.nodes.list();
  }

  @Get(':id')
  get(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.get(id);
  }

  @Post()
  @ApiOperation({ summary: 'Register or update a node (host key pinned) and probe it over SSH' })
  @ApiBody({ schema: z.toJSONSchema(NodeSpec.strict(), { io: 'input' }) as object })
  // Strict here (the config file's schema is not): a misspelt optional field over REST is a 400, not dropped.
  register(@Body(new ZodBody(NodeSpec.strict())) spec: NodeSpec): Promise<NodeRecord> {
    return this.nodes.register(spec);
  }

  @Post(':id/probe')
  @HttpCode(200)
  @ApiOperation({ summary: 'Probe a node again: CRIU version, criu check, features, kernel, CPU, memory, disk' })
  probe(@Param('id') id: string): Promise<NodeRecord> {
    return this.nodes.probe(id);
  }
}
