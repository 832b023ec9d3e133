import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../common/auth';
import { MetricsService } from './metrics.service';

/** Prometheus scrape endpoint; no auth, like /health (DESIGN.md). */
@ApiExcludeController()
@Public()
@Controller('metrics')
export class MetricsController {
  constructor(private readonly metrics: MetricsService) {}

  @Get()
  async scrape(@Res() reply: FastifyReply): Promise<void> {
    const text = await this.metrics.render();
    await reply.header('content-type', this.metrics.contentType).send(text);
  }
}
