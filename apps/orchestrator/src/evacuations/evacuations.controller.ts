import { Controller, Get, Param } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import type { EvacuationRecord } from '@spotlift/domain';
import { EvacuationsService } from './evacuations.service.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('evacuations')
@ApiBearerAuth()
@Controller('evacuations')
export class EvacuationsController {
  constructor(private readonly evacuations: EvacuationsService) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'All evacuations, newest first (the plan without its input, for brevity)' })
  async list(): Promise<EvacuationRecord[]> {
    return (await this.evacuations.list()).map(withoutPlanInput);
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({
    summary:
      'One evacuation: notice and deadline, the plan (with its input), each job with its state and downtime, the outcome',
  })
  get(@Param('id') id: string): Promise<EvacuationRecord> {
    return this.evacuations.get(id);
  }
}

function withoutPlanInput(e: EvacuationRecord): EvacuationRecord {
  if (!e.plan) return e;
  const {
    input: _input,
    history: _history,
    migrations: _migrations,
    ...plan
  } = e.plan as typeof e.plan & {
    input?: unknown;
    history?: unknown;
    migrations?: unknown;
  };
  return { ...e, plan };
}
