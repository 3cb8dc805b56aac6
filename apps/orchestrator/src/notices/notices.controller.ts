import { Body, Controller, HttpCode, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { BadRequestError } from '@spotlift/domain';
import { parseWebhookNotice, webhookNoticeSchema } from '@spotlift/notices';
import { NoticeIntake, type IntakeResult } from './notice-intake.service.js';
import { RequireRole } from '../auth/roles.decorator.js';
import { bodyNodeId } from '../auth/access-policy.js';

@ApiTags('notices')
@ApiBearerAuth()
@Controller('notices')
export class NoticesController {
  constructor(private readonly intake: NoticeIntake) {}

  /**
   * A notice pushed by anything else (a node agent, a cloud queue consumer, a person). Validated before
   * anything acts on it: a bad body is a 400 and raises nothing; a repeat of a known notice is answered
   * `duplicate: true` and raises nothing either.
   */
  @Post()
  @RequireRole('operator', { agentNode: bodyNodeId })
  @HttpCode(202)
  @ApiOperation({ summary: 'Push a termination/preemption/maintenance/rebalance notice for a node' })
  @ApiBody({ schema: z.toJSONSchema(webhookNoticeSchema, { io: 'input', unrepresentable: 'any' }) as object })
  async push(@Body() body: unknown): Promise<IntakeResult> {
    const parsed = parseWebhookNotice(body);
    if (!parsed.ok) {
      throw new BadRequestError(`invalid notice: ${parsed.problem.message}`, { problem: parsed.problem.code });
    }
    return this.intake.pushed(parsed.notice);
  }
}
