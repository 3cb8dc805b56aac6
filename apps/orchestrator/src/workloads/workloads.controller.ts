import { Body, Controller, Delete, Get, HttpCode, Param, Post, Put, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { GuardReport, WorkloadRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { WORKLOAD_STATES } from '@spotlift/store';
import { RegisterWorkload, type WorkloadView, WorkloadsService } from './workloads.service.js';
import { GuardBody } from './register-workload.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('workloads')
@ApiBearerAuth()
@Controller('workloads')
export class WorkloadsController {
  constructor(private readonly workloads: WorkloadsService) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Workloads, oldest first, one page at a time (filters: state, node, time)' })
  @ListDocs(WORKLOAD_STATES, ['state', 'node'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<WorkloadRecord[]> {
    const q = parseListQuery(query, 'asc', WORKLOAD_STATES, ['state', 'node']);
    return sendPage(res, await this.workloads.page(q));
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({
    summary:
      'A workload as stored, with its tree, RSS and state as the node shows them now under `observed` (writes nothing)',
  })
  get(@Param('id') id: string): Promise<WorkloadView> {
    return this.workloads.view(id);
  }

  @Get(':id/guard')
  @RequireRole('viewer')
  @ApiOperation({
    summary:
      'Guard mode: RPO (age of the last good guard checkpoint), freeze per checkpoint and per hour, the stored guard checkpoints',
  })
  guard(@Param('id') id: string): Promise<GuardReport> {
    return this.workloads.guard(id);
  }

  @Post(':id/refresh')
  @RequireRole('operator')
  @HttpCode(200)
  @ApiOperation({
    summary:
      'Read the tree and RSS again over SSH and save them (or `gone`) unless a job changed the workload meanwhile',
  })
  refresh(@Param('id') id: string): Promise<WorkloadView> {
    return this.workloads.refresh(id);
  }

  @Post()
  @RequireRole('operator')
  @ApiOperation({
    summary:
      'Register a process tree by node and root pid (or pidfile); 409 when that process is registered already, 400 for pid 1, kernel threads, another namespace, spotlift’s own SSH session',
  })
  @ApiBody({ schema: z.toJSONSchema(RegisterWorkload, { io: 'input' }) as object })
  register(@Body(new ZodBody(RegisterWorkload)) body: RegisterWorkload): Promise<WorkloadRecord> {
    return this.workloads.register(body);
  }

  @Put(':id/guard')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Guard mode on (or its settings changed): periodic --leave-running checkpoints' })
  @ApiBody({ schema: z.toJSONSchema(GuardBody, { io: 'input' }) as object })
  setGuard(@Param('id') id: string, @Body(new ZodBody(GuardBody)) body: GuardBody): Promise<WorkloadRecord> {
    return this.workloads.setGuard(id, body);
  }

  @Delete(':id/guard')
  @RequireRole('operator')
  @ApiOperation({ summary: 'Guard mode off; its guard checkpoints stay until deleted' })
  endGuard(@Param('id') id: string): Promise<WorkloadRecord> {
    return this.workloads.setGuard(id, undefined);
  }

  @Delete(':id')
  @RequireRole('operator')
  @HttpCode(204)
  @ApiOperation({ summary: 'Forget a workload (nothing on the node is touched); 409 while a job works on it' })
  remove(@Param('id') id: string): Promise<void> {
    return this.workloads.remove(id);
  }
}
