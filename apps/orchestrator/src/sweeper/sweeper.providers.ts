/**
 * What the sweeper adds to the app, in one place so app.module.ts only spreads these lists: the interval
 * scheduler, `GET /sweeper` on every role, the sweeps themselves on worker roles (see SweeperService).
 */
import type { DynamicModule, Provider, Type } from '@nestjs/common';
import { ScheduleModule } from '@nestjs/schedule';
import { SweeperController } from './sweeper.controller.js';
import { SweeperService } from './sweeper.service.js';

export const sweeperImports: DynamicModule[] = [ScheduleModule.forRoot()];
export const sweeperControllers: Type[] = [SweeperController];
export const sweeperProviders: Provider[] = [SweeperService];
