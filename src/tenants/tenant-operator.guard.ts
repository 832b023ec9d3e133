import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Principal } from '../common/auth';
import { AppError } from '../common/errors';
import { TenantsService } from './tenants.service';

/**
 * For operator-only routes under `/tenants/{slug}` (API keys, tenant deletion). Runs after the
 * global AuthGuard and before the body is validated. A tenant key gets the 404 it gets for
 * anything of another tenant, and a 403 only for its own tenant, so the answer never tells a key
 * whether another tenant exists.
 */
@Injectable()
export class TenantOperatorGuard implements CanActivate {
  constructor(private readonly tenants: TenantsService) {}

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const req = ctx.switchToHttp().getRequest<FastifyRequest & { principal?: Principal }>();
    const principal = req.principal;
    if (!principal) throw new AppError('unauthorized');
    if (principal.kind === 'operator') return true;
    const slug = (req.params as { slug?: unknown }).slug;
    if (typeof slug === 'string') await this.tenants.resolve(principal, slug);
    throw new AppError('forbidden', 'only the operator token may do this');
  }
}
