import { Injectable } from '@nestjs/common';
import { Prisma } from '../generated/prisma/client';
import type { Tenant } from '../generated/prisma/client';
import { ChangeBus } from '../broker/identity/change-bus';
import { Principal } from '../common/auth';
import { AppError, conflict, notFound } from '../common/errors';
import { newTenantId } from '../common/ids';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { effectiveLimits, TenantLimits } from './limits';
import type { CreateTenantDto, UpdateTenantDto } from './tenant.dto';

export interface TenantView {
  slug: string;
  name: string;
  limits: TenantLimits;
  requireClientCertificates: boolean;
  defaultAclPermission: 'allow' | 'deny';
  createdAt: string;
  updatedAt: string;
}

export function tenantView(t: Tenant): TenantView {
  return {
    slug: t.slug,
    name: t.name,
    limits: effectiveLimits(t.limits),
    requireClientCertificates: t.requireClientCertificates,
    defaultAclPermission: t.defaultAclPermission,
    createdAt: t.createdAt.toISOString(),
    updatedAt: t.updatedAt.toISOString(),
  };
}

/** Hooks other capabilities run inside tenant creation / after deletion (CA, retained cleanup). */
export interface TenantLifecycleHook {
  onTenantCreated?(tenant: Tenant): Promise<void>;
  onTenantDeleted?(tenant: Tenant): Promise<void>;
}

@Injectable()
export class TenantsService {
  private readonly hooks: TenantLifecycleHook[] = [];

  constructor(
    private readonly prisma: PrismaService,
    private readonly changes: ChangeBus,
  ) {}

  addLifecycleHook(hook: TenantLifecycleHook): void {
    this.hooks.push(hook);
  }

  /** The tenant `slug` as `principal` may see it; another tenant's is "not found", as if absent. */
  async resolve(principal: Principal, slug: string): Promise<Tenant> {
    const tenant = await this.prisma.db.tenant.findUnique({ where: { slug } });
    if (!tenant || (principal.kind === 'tenant-key' && principal.tenantId !== tenant.id)) throw notFound('tenant');
    return tenant;
  }

  async create(dto: CreateTenantDto): Promise<Tenant> {
    try {
      const tenant = await this.prisma.db.tenant.create({
        data: {
          id: newTenantId(),
          slug: dto.slug,
          name: dto.name ?? dto.slug,
          limits: (dto.limits ?? {}) as Prisma.InputJsonValue,
          requireClientCertificates: dto.requireClientCertificates ?? false,
          defaultAclPermission: dto.defaultAclPermission ?? 'deny',
        },
      });
      for (const hook of this.hooks) await hook.onTenantCreated?.(tenant);
      await this.changes.publish({ kind: 'tenant', tenantId: tenant.id });
      return this.prisma.db.tenant.findUniqueOrThrow({ where: { id: tenant.id } });
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`tenant "${dto.slug}" already exists`);
      throw err;
    }
  }

  async list(principal: Principal, limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<Page<TenantView>> {
    const after = decodeCursor(cursor);
    const rows = await this.prisma.db.tenant.findMany({
      where: {
        ...(principal.kind === 'tenant-key' ? { id: principal.tenantId } : {}),
        ...(after !== undefined ? { slug: { gt: after } } : {}),
      },
      orderBy: { slug: 'asc' },
      take: limit + 1,
    });
    return toPage(rows, limit, (t) => t.slug, tenantView);
  }

  async update(principal: Principal, slug: string, dto: UpdateTenantDto): Promise<Tenant> {
    const tenant = await this.resolve(principal, slug);
    if (dto.limits !== undefined && principal.kind !== 'operator') {
      throw new AppError('forbidden', 'only the operator may change limits');
    }
    const limits =
      dto.limits !== undefined
        ? ({ ...(tenant.limits as object), ...dto.limits } as Prisma.InputJsonValue)
        : undefined;
    const updated = await this.prisma.db.tenant.update({
      where: { id: tenant.id },
      data: {
        name: dto.name,
        limits,
        requireClientCertificates: dto.requireClientCertificates,
        defaultAclPermission: dto.defaultAclPermission,
      },
    });
    await this.changes.publish({ kind: 'tenant', tenantId: tenant.id });
    return updated;
  }

  async remove(slug: string): Promise<Tenant> {
    const tenant = await this.resolve({ kind: 'operator' }, slug);
    await this.prisma.db.tenant.delete({ where: { id: tenant.id } });
    await this.changes.publish({ kind: 'tenant-deleted', tenantId: tenant.id });
    for (const hook of this.hooks) await hook.onTenantDeleted?.(tenant);
    return tenant;
  }
}

export function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  if ((err as { code?: string }).code === 'P2002') return true;
  // the PGlite adapter hands PostgreSQL's error through as it is, without mapping it to P2002
  const cause = (err as { cause?: { kind?: string; code?: string } }).cause;
  return cause?.kind === 'postgres' && cause.code === '23505';
}
