import { Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller';
import { MetricsService } from './metrics.service';
import { SysTopicsPublisher } from './sys-topics';

/** Prometheus metrics on /metrics and the per-tenant $SYS topics. */
@Module({
  controllers: [MetricsController],
  providers: [MetricsService, SysTopicsPublisher],
  exports: [MetricsService],
})
export class MetricsModule {}
