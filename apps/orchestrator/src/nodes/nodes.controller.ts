import { Body, Controller, Delete, Get, HttpCode, Optional, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { NodeRecord, PostCopyTrialRecord } from '@spotlift/domain';
import { NodeSpec } from '../config/app-config.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { NODE_STATES, PostCopyTrials } from '@spotlift/store';
import { NodesService } from './nodes.service.js';
import { ReleasableMarks } from '../rebalance/releasable-marks.js';
import { RequireRole } from '../auth/roles.decorator.js';
import type { AuthenticatedRequest } from '../common/auth.guard.js';

const LostBody = z.object({ reason: z.string().min(1).max(500).optional() }).strict();
type LostBody = z.infer<typeof LostBody>;

@ApiTags('nodes')
@ApiBearerAuth()
@Controller('nodes')
export class NodesController {
  constructor(
    private readonly nodes: NodesService,
    private readonly marks: ReleasableMarks,
    @Optional() private readonly trials?: PostCopyTrials,
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

  @Get(':id/trials')
  @RequireRole('viewer')
  @ApiOperation({
    summary: "The node's stored post-copy trials, to and from every other node (result, when, how long)",
    description: 'Pairs never tried, or whose trial expired, are absent. Trials run ahead of notices (issue 16).',
  })
  async trialsOf(@Param('id') id: string): Promise<PostCopyTrialRecord[]> {
    await this.nodes.get(id);
    const trials = this.trials;
    if (!trials) return [];
    const others = (await this.nodes.list()).filter((n) => n.id !== id);
    const found = await Promise.all(others.flatMap((o) => [trials.get(id, o.id), trials.get(o.id, id)]));
    return found.filter((t): t is PostCopyTrialRecord => t !== undefined);
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

  @Post(':id/lost')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Confirm a node gone for good: once it is also silent beyond the threshold, it is fenced and its guarded workloads restored elsewhere',
    description:
      'Recorded on the node (who, when, why) and audited. Nothing is restored while the node still answers over SSH.',
  })
  @ApiBody({ schema: z.toJSONSchema(LostBody, { io: 'input' }) as object })
  lost(
    @Param('id') id: string,
    @Body(new ZodBody(LostBody)) body: LostBody,
    @Req() req: AuthenticatedRequest,
  ): Promise<NodeRecord> {
    return this.nodes.confirmLost(id, req.principal?.name ?? 'api', body.reason);
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
