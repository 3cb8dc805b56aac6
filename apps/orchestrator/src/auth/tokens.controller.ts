import { Body, Controller, Delete, Get, Param, Post, Query, Req, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import { type AuditEntry, BadRequestError } from '@spotlift/domain';
import { AuditLog } from '@spotlift/store';
import type { AuthenticatedRequest } from '../common/auth.guard.js';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { TOKEN_STATES } from '@spotlift/store';
import { RequireRole } from './roles.decorator.js';
import { CreateToken, type TokenView, TokenService } from './token-service.js';

@ApiTags('access')
@ApiBearerAuth()
@Controller('tokens')
export class TokensController {
  constructor(private readonly tokens: TokenService) {}

  @Post()
  @RequireRole('admin')
  @ApiOperation({
    summary: 'Create a token (viewer, operator, admin, or agent for one nodeId); its secret is in this answer only',
  })
  @ApiBody({ schema: z.toJSONSchema(CreateToken, { io: 'input' }) as object })
  async create(
    @Body(new ZodBody(CreateToken)) body: CreateToken,
    @Req() req: AuthenticatedRequest,
  ): Promise<TokenView & { token: string }> {
    const created = await this.tokens.create(body, req.principal!);
    req.auditTargets = { token: created.id };
    return created;
  }

  @Get()
  @RequireRole('admin')
  @ApiOperation({
    summary:
      'Tokens, revoked ones included (state=active|revoked), without their secrets, oldest first, one page at a time',
  })
  @ListDocs(TOKEN_STATES, ['state', 'node'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<TokenView[]> {
    const q = parseListQuery(query, 'asc', TOKEN_STATES, ['state', 'node']);
    return sendPage(res, await this.tokens.page(q));
  }

  @Delete(':id')
  @RequireRole('admin')
  @ApiOperation({ summary: 'Revoke a token: refused at once here, on other replicas within 2 s' })
  revoke(@Param('id') id: string): Promise<TokenView> {
    return this.tokens.revoke(id);
  }
}

const AuditQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict();

@ApiTags('access')
@ApiBearerAuth()
@Controller('audit')
export class AuditController {
  constructor(private readonly log: AuditLog) {}

  @Get()
  @RequireRole('admin')
  @ApiOperation({ summary: 'The newest audit entries (limit 1..1000, default 100), newest first' })
  recent(@Query() query: unknown): Promise<AuditEntry[]> {
    const parsed = AuditQuery.safeParse(query);
    if (!parsed.success)
      throw new BadRequestError(
        `invalid query: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      );
    return this.log.recent(parsed.data.limit);
  }
}
