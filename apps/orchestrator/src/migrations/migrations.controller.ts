import { Body, Controller, Get, HttpCode, Param, Post, Query, Res } from '@nestjs/common';
import type { Response } from 'express';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { MigrationRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { ListDocs, parseListQuery, sendPage } from '../common/list-query.js';
import { MIGRATION_STATES } from '@spotlift/store';
import { type CancelAnswer, MigrationCancelService } from './migration-cancel.service.js';
import { CreateMigration, MigrationsService } from './migrations.service.js';
import { RequireRole } from '../auth/roles.decorator.js';

@ApiTags('migrations')
@ApiBearerAuth()
@Controller('migrations')
export class MigrationsController {
  constructor(
    private readonly migrations: MigrationsService,
    private readonly cancels: MigrationCancelService,
  ) {}

  @Post()
  @RequireRole('operator')
  @ApiOperation({ summary: 'Queue a migration of a workload; the destination is chosen when none is given' })
  @ApiBody({ schema: z.toJSONSchema(CreateMigration, { io: 'input' }) as object })
  create(@Body(new ZodBody(CreateMigration)) body: CreateMigration): Promise<MigrationRecord> {
    return this.migrations.create(body);
  }

  @Get()
  @RequireRole('viewer')
  @ApiOperation({ summary: 'Migrations, newest first, one page at a time (filters: state, node, workload, time)' })
  @ListDocs(MIGRATION_STATES, ['state', 'node', 'workload'])
  async list(@Query() query: unknown, @Res({ passthrough: true }) res: Response): Promise<MigrationRecord[]> {
    const q = parseListQuery(query, 'desc', MIGRATION_STATES, ['state', 'node', 'workload']);
    return sendPage(res, await this.migrations.page(q));
  }

  @Get(':id')
  @RequireRole('viewer')
  @ApiOperation({ summary: 'One migration: state, phases with times, CRIU stats, bytes, downtime' })
  get(@Param('id') id: string): Promise<MigrationRecord> {
    return this.migrations.get(id);
  }

  @Post(':id/cancel')
  @RequireRole('operator')
  @HttpCode(202)
  @ApiOperation({
    summary:
      'Cancel a migration: a queued one never starts; a running one rolls back at its next safe point; 409 past the commit point',
  })
  cancel(@Param('id') id: string): Promise<CancelAnswer> {
    return this.cancels.cancel(id);
  }
}
