import { Body, Controller, Get, HttpCode, Param, Post, Req } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { RequireRole } from '../auth/roles.decorator.js';
import type { AuthenticatedRequest } from '../common/auth.guard.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { EvaluateBody } from './rebalance-config.js';
import { RebalanceService } from './rebalance.service.js';
import type { RebalancePlanRecord } from './rebalance-store.js';

/** Who asked, for the plan's events (the audit log records the call itself). */
const caller = (req: AuthenticatedRequest): string => req.principal?.name ?? 'api';

@ApiTags('rebalance')
@ApiBearerAuth()
@Controller('rebalance')
export class RebalanceController {
  constructor(private readonly rebalance: RebalanceService) {}

  @Post('evaluate')
  @RequireRole('operator')
  @ApiOperation({
    summary:
      'Plan now with the configured policies (or `{policies}`); in `auto` mode the plan is applied within budgets. 409 when rebalance.mode is off',
  })
  @ApiBody({ schema: z.toJSONSchema(EvaluateBody, { io: 'input' }) as object, required: false })
  evaluate(@Body(new ZodBody(EvaluateBody)) body: EvaluateBody): Promise<RebalancePlanRecord> {
    return this.rebalance.evaluate('request', body);
  }

  @Get('plans')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Rebalancing plans, newest first (the last rebalance.keepPlans)' })
  list(): Promise<RebalancePlanRecord[]> {
    return this.rebalance.list();
  }

  @Get('plans/:id')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'One plan: moves with reason, predicted downtime, gain, score and state; skips with why' })
  get(@Param('id') id: string): Promise<RebalancePlanRecord> {
    return this.rebalance.get(id);
  }

  @Post('plans/:id/apply')
  @RequireRole('operator')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Apply a proposed plan once: moves start within budgets, each re-checked first (stale: skipped, paused by a notice: cancelled). 409 if not proposed or already applied',
  })
  apply(@Param('id') id: string, @Req() req: AuthenticatedRequest): Promise<RebalancePlanRecord> {
    return this.rebalance.apply(id, caller(req));
  }

  @Post('plans/:id/cancel')
  @RequireRole('operator')
  @HttpCode(202)
  @ApiOperation({
    summary: 'Cancel the moves of a plan that have not started (running ones finish). 409 once it ended',
  })
  cancel(@Param('id') id: string, @Req() req: AuthenticatedRequest): Promise<RebalancePlanRecord> {
    return this.rebalance.cancel(id, caller(req));
  }
}
