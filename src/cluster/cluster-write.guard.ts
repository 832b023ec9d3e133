import { CanActivate, ExecutionContext, Injectable } from '@nestjs/common';
import { ClusterService, clusterUnavailable } from './cluster.service';

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Fail closed: while Redis is unreachable a change made here could not reach the other nodes'
 * caches (a revoked rule or device would still be honoured there), so changes answer 503 instead
 * of half-applying. Reads keep working. Runs after AuthGuard, so a bad token is still a 401.
 */
@Injectable()
export class ClusterWriteGuard implements CanActivate {
  constructor(private readonly cluster: ClusterService) {}

  canActivate(ctx: ExecutionContext): boolean {
    if (this.cluster.available) return true;
    const req = ctx.switchToHttp().getRequest<{ method: string }>();
    if (WRITES.has(req.method)) throw clusterUnavailable();
    return true;
  }
}
