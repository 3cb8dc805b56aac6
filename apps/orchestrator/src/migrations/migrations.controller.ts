import { Body, Controller, Get, Param, Post } from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiTags } from '@nestjs/swagger';
import { z } from 'zod';
import type { MigrationRecord } from '@spotlift/domain';
import { ZodBody } from '../common/zod-body.pipe.js';
import { CreateMigration, MigrationsService } from './migrations.service.js';

@ApiTags('migrations')
@ApiBearerAuth()
@Controller('migrations')
export class MigrationsController {
  constructor(private readonly migrations: MigrationsService) {}

  @Post()
  @ApiOperation({ summary: 'Queue a migration of a workload; the destination is chosen when none is given' })
  @ApiBody({ schema: z.toJSONSchema(CreateMigration, { io: 'input' }) as object })
  create(@Body(new ZodBody(CreateMigration)) body: CreateMigration): Promise<MigrationRecord> {
    return this.migrations.create(body);
  }

  @Get()
  @ApiOperation({ summary: 'All migrations, newest first' })
  list(): Promise<MigrationRecord[]> {
    return this.migrations.list();
  }

  @Get(':id')
  @ApiOperation({ summary: 'One migration: state, phases with times, CRIU stats, bytes, downtime' })
  get(@Param('id') id: string): Promise<MigrationRecord> {
    return this.migrations.get(id);
  }
}
