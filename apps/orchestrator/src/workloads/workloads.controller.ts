import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { WorkloadRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { RegisterWorkload, WorkloadsService } from './workloads.service.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('workloads')
@ApiBearerAuth()
@Controller('workloads')
export class WorkloadsController {
  constructor(private readonly workloads: WorkloadsService) {}

  @Get()
  @RequireRole('viewer')
  list(): Promise<WorkloadRecord[]> {
    return this.workloads.list();
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'A workload, with its process tree and RSS read again over SSH' })
  get(@Param('id') id: string): Promise<WorkloadRecord> {
    return this.workloads.refresh(id);
  }

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Register a process tree by node and root pid (or pidfile)' })
  @ApiBody({ schema: z.toJSONSchema(RegisterWorkload, { io: 'input' }) as object })
  register(@Body(new ZodBody(RegisterWorkload)) body: RegisterWorkload): Promise<WorkloadRecord> {
    return this.workloads.register(body);
  }
}
