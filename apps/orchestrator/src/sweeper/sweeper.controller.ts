import { Controller, Get } from '@nestjs/common';
import { ApiBearerAuth, ApiOperation, ApiTags } from '@nestjs/swagger';
import { RequireRole } from '../auth/roles.decorator.js';
import { SweeperService, type SweeperStatus } from './sweeper.service.js';

@ApiTags('operations')
@ApiBearerAuth()
@Controller('sweeper')
export class SweeperController {
  constructor(private readonly sweeper: SweeperService) {}

  @Get()
  @RequireRole('viewer')
  @ApiOperation({
    summary:
      "The last sweep of the nodes' leftovers (frozen trees, image directories): each directory, what was done and why; what needs a person; totals",
  })
  status(): Promise<SweeperStatus> {
    return this.sweeper.status();
  }
}
