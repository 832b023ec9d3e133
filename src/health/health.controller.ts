import { Controller, Get, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { Public } from '../common/auth';
import { PrismaService } from '../database/prisma.service';
import { BrokerService } from '../broker/broker.service';

/** Probes for orchestrators: live = the process answers; ready = it can serve (DB, listeners). */
@ApiExcludeController()
@Public()
@Controller('health')
export class HealthController {
  constructor(
    private readonly prisma: PrismaService,
    private readonly broker: BrokerService,
  ) {}

  @Get('live')
  live(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('ready')
  async ready(@Res({ passthrough: true }) reply: FastifyReply): Promise<{ status: string; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    checks.database = await withTimeout(this.prisma.ping(), 2000).then(
      () => 'ok',
      (err: Error) => `failing: ${err.message}`,
    );
    checks.listeners = this.broker.isListening() ? 'ok' : 'failing: not listening';
    for (const [name, check] of this.broker.readinessChecks()) {
      checks[name] = await withTimeout(check(), 2000).then(
        () => 'ok',
        (err: Error) => `failing: ${err.message}`,
      );
    }
    const ok = Object.values(checks).every((v) => v === 'ok');
    void reply.status(ok ? 200 : 503);
    return { status: ok ? 'ok' : 'unavailable', checks };
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
