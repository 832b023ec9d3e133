import { CallHandler, ExecutionContext, Injectable, Logger, NestInterceptor, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { from, mergeMap, Observable } from 'rxjs';
import { actorOf, Principal } from '../common/auth';
import { PrismaService } from '../database/prisma.service';
import { AuditService } from './audit.service';
import { auditDetail, describeRestChange } from './rest-change';

export const AUDIT_TYPE = 'auditType';
/** Names a write route's audit event type when the route's path does not (rest-change.ts). */
export const AuditAs = (type: string): MethodDecorator => SetMetadata(AUDIT_TYPE, type);
/** Leaves a write route out of the trail (it records its events itself). */
export const NoAudit = (): MethodDecorator => SetMetadata(AUDIT_TYPE, false);

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

type AuditedRequest = FastifyRequest & { principal?: Principal };

/**
 * Records every successful REST change under /api/v1 in the audit trail: who (operator or
 * api-key:<id>), what (a type derived from the route), which resource, when; the body goes into
 * `detail` without its secrets. The event is written before the response is sent. Global, so
 * routes added later are covered without doing anything.
 */
@Injectable()
export class AuditInterceptor implements NestInterceptor {
  private readonly logger = new Logger('Audit');

  constructor(
    private readonly audit: AuditService,
    private readonly prisma: PrismaService,
    private readonly reflector: Reflector,
  ) {}

  async intercept(ctx: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    if (ctx.getType() !== 'http') return next.handle();
    const req = ctx.switchToHttp().getRequest<AuditedRequest>();
    const route = req.routeOptions?.url;
    const override = this.reflector.get<string | false | undefined>(AUDIT_TYPE, ctx.getHandler());
    if (!WRITES.has(req.method) || route === undefined || !route.startsWith('/api/v1/') || override === false) {
      return next.handle();
    }
    const params = (req.params ?? {}) as Record<string, string | undefined>;
    // looked up before the handler runs: a deleted tenant is gone afterwards
    const tenantIdBefore = await this.tenantIdOf(req.principal, params.slug);
    return next.handle().pipe(
      mergeMap((result) =>
        from(
          this.recordChange(req, route, params, tenantIdBefore, result, override).then(
            () => result,
            (err: Error) => {
              // the change happened: the response stands, the operator learns from the log
              this.logger.error(`audit event for ${req.method} ${route} not written: ${err.message}`);
              return result;
            },
          ),
        ),
      ),
    );
  }

  private async recordChange(
    req: AuditedRequest,
    route: string,
    params: Record<string, string | undefined>,
    tenantIdBefore: string | null,
    result: unknown,
    override: string | undefined,
  ): Promise<void> {
    const principal = req.principal;
    if (principal === undefined) return;
    const change = describeRestChange(req.method, route, params, result);
    if (change === null) return;
    let tenantId = tenantIdBefore;
    if (tenantId === null && result !== null && typeof result === 'object') {
      const slug = (result as { slug?: unknown }).slug;
      if (typeof slug === 'string') tenantId = await this.tenantIdOf(principal, slug);
    }
    if (tenantId === null) return;
    await this.audit.write({
      tenantId,
      type: override ?? change.type,
      actor: actorOf(principal),
      target: change.target,
      detail: auditDetail(req.body),
    });
  }

  private async tenantIdOf(principal: Principal | undefined, slug: string | undefined): Promise<string | null> {
    if (slug === undefined || principal === undefined) return null;
    // A tenant key reaches only its own tenant (a route answers 404 for another's slug), and an
    // event is written only for a route that succeeded: no query needed (each one costs the
    // event loop a query compilation, and on PGlite its execution too).
    if (principal.kind === 'tenant-key') return principal.tenantId;
    const tenant = await this.prisma.db.tenant.findUnique({ where: { slug }, select: { id: true } });
    return tenant?.id ?? null;
  }
}
