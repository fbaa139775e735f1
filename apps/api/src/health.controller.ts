import { Controller, Get } from '@nestjs/common';
import { z } from 'zod';
import { ApiRoute } from './api-contract/api-route.js';

@Controller('health')
export class HealthController {
  @ApiRoute({
    summary: 'Liveness',
    response: z.object({ status: z.literal('ok') }).meta({ example: { status: 'ok' } }),
  })
  @Get()
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }
}
