import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { EvacuationRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { EVACUATION_STATES } from '@spotlift/store';
import { EvacuationsService, type RaiseResult } from './evacuations.service.js';
import { ManualEvacuationBody } from './manual-evacuation.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('evacuations')
@ApiBearerAuth()
@Controller('evacuations')
export class EvacuationsController {
  constructor(private readonly evacuations: EvacuationsService) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({
    summary:
      'Evacuations, newest first, one page at a time (the plan without its input, for brevity; filters: state, node, time)',
  })
  @ListDocs(EVACUATION_STATES, ['state', 'node'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<EvacuationRecord[]> {
    const q = parseListQuery(query, 'desc', EVACUATION_STATES, ['state', 'node']);
    return sendPage(res, await this.evacuations.page(q)).map(withoutPlanInput);
  }

  @Post()
  @RequireRole('operator')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Evacuate a node by hand before a deadline: a termination notice of its own, planned like any other',
    description:
      '`{node, deadline | secondsUntil, reason?}`. 202 `{created, evacuation}`; an evacuation already open for the ' +
      'node is joined (`created: false`, its deadline moved earlier if this one is). 404 unknown node.',
  })
  @ApiBody({ schema: z.toJSONSchema(ManualEvacuationBody, { io: 'input' }) as object })
  evacuate(@Body(new ZodBody(ManualEvacuationBody)) body: ManualEvacuationBody): Promise<RaiseResult> {
    return this.evacuations.evacuateNow(body);
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
