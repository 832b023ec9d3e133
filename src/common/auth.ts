import {
  CanActivate,
  createParamDecorator,
  ExecutionContext,
  Inject,
  Injectable,
  Logger,
  SetMetadata,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, AppConfig } from '../config/config';
import { PrismaService } from '../database/prisma.service';
import { AppError } from './errors';
import { ThrottledLog } from './throttled-log';

/** Who is calling: derived once from the bearer token, then passed explicitly. */
export type Principal = { kind: 'operator' } | { kind: 'tenant-key'; tenantId: string; keyId: string };

export const PUBLIC_ROUTE = 'publicRoute';
export const OPERATOR_ONLY = 'operatorOnly';
/** No authentication (health, metrics, server CA). */
export const Public = (): MethodDecorator & ClassDecorator => SetMetadata(PUBLIC_ROUTE, true);
/** Only the operator token (ADMIN_TOKEN) may call this route. */
export const OperatorOnly = (): MethodDecorator & ClassDecorator => SetMetadata(OPERATOR_ONLY, true);

type RequestWithPrincipal = FastifyRequest & { principal?: Principal };

export const CurrentPrincipal = createParamDecorator((_: unknown, ctx: ExecutionContext): Principal => {
  const principal = ctx.switchToHttp().getRequest<RequestWithPrincipal>().principal;
  if (!principal) throw new AppError('unauthorized');
  return principal;
});

export function actorOf(principal: Principal): string {
  return principal.kind === 'operator' ? 'operator' : `api-key:${principal.keyId}`;
}

/** An API key's lastUsedAt is written at most this often: a busy key costs one write a minute. */
export const LAST_USED_RESOLUTION_MS = 60_000;

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Runs as a global guard, i.e. before the body is validated (401 before 400). */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly adminTokenDigest: Buffer;
  private readonly lastUsedFailures = new ThrottledLog(new Logger('ApiKeys'));

  constructor(
    private readonly reflector: Reflector,
    private readonly prisma: PrismaService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.adminTokenDigest = createHash('sha256').update(config.adminToken).digest();
  }

  async canActivate(ctx: ExecutionContext): Promise<boolean> {
    const targets = [ctx.getHandler(), ctx.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC_ROUTE, targets)) return true;
    const req = ctx.switchToHttp().getRequest<RequestWithPrincipal>();
    const header = req.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) throw new AppError('unauthorized', 'send Authorization: Bearer <token>');
    const principal = await this.resolve(match[1]);
    if (!principal) throw new AppError('unauthorized', 'the token is not valid');
    if (principal.kind !== 'operator' && this.reflector.getAllAndOverride<boolean>(OPERATOR_ONLY, targets)) {
      throw new AppError('forbidden', 'only the operator token may do this');
    }
    req.principal = principal;
    return true;
  }

  private async resolve(token: string): Promise<Principal | null> {
    const digest = createHash('sha256').update(token).digest();
    if (timingSafeEqual(digest, this.adminTokenDigest)) return { kind: 'operator' };
    const key = await this.prisma.db.apiKey.findUnique({
      where: { keyHash: digest.toString('hex') },
      select: { id: true, tenantId: true, lastUsedAt: true },
    });
    if (!key) return null;
    const now = new Date();
    if (key.lastUsedAt === null || now.getTime() - key.lastUsedAt.getTime() >= LAST_USED_RESOLUTION_MS) {
      // bookkeeping: a failed write must not fail the request it describes
      await this.prisma.db.apiKey
        .updateMany({ where: { id: key.id }, data: { lastUsedAt: now } })
        .catch((err: Error) => this.lastUsedFailures.error(`could not record an API key's last use: ${err.message}`));
    }
    return { kind: 'tenant-key', tenantId: key.tenantId, keyId: key.id };
  }
}
