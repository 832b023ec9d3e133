import { Injectable } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import type { ApiKey, Tenant } from '../generated/prisma/client';
import { hashApiKey } from '../common/auth';
import { conflict, notFound } from '../common/errors';
import { newId } from '../common/ids';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../tenants/tenants.service';

/** Keys are recognisable in configs and by secret scanners: `mqk_` then 256 random bits. */
export const API_KEY_PREFIX = 'mqk_';

export function newApiKey(): string {
  return API_KEY_PREFIX + randomBytes(32).toString('base64url');
}

/** What lists show: never the key, never its hash. */
export interface ApiKeyView {
  id: string;
  name: string;
  createdAt: string;
  /** the last request authenticated with it, to within LAST_USED_RESOLUTION_MS; null if never used */
  lastUsedAt: string | null;
}

/** What names a key: the create response (with the key itself) and the start of every listed item. */
function apiKeyIdentity(k: ApiKey): Omit<ApiKeyView, 'lastUsedAt'> {
  return { id: k.id, name: k.name, createdAt: k.createdAt.toISOString() };
}

export function apiKeyView(k: ApiKey): ApiKeyView {
  return { ...apiKeyIdentity(k), lastUsedAt: k.lastUsedAt?.toISOString() ?? null };
}

@Injectable()
export class ApiKeysService {
  constructor(private readonly prisma: PrismaService) {}

  /** The only time the key exists outside the caller's hands: it is stored as SHA-256 only. */
  async create(tenant: Tenant, name: string): Promise<Omit<ApiKeyView, 'lastUsedAt'> & { key: string }> {
    const key = newApiKey();
    try {
      const row = await this.prisma.db.apiKey.create({
        data: { id: newId(), tenantId: tenant.id, name, keyHash: hashApiKey(key) },
      });
      return { ...apiKeyIdentity(row), key };
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`an API key named "${name}" already exists`);
      throw err;
    }
  }

  async list(tenant: Tenant, limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<Page<ApiKeyView>> {
    const after = decodeCursor(cursor);
    const rows = await this.prisma.db.apiKey.findMany({
      where: { tenantId: tenant.id, ...(after !== undefined ? { id: { gt: after } } : {}) },
      orderBy: { id: 'asc' },
      take: limit + 1,
    });
    return toPage(rows, limit, (k) => k.id, apiKeyView);
  }

  /** Revoked at once: the guard looks every key up in the database, nothing caches it. */
  async remove(tenant: Tenant, id: string): Promise<void> {
    const { count } = await this.prisma.db.apiKey.deleteMany({ where: { id, tenantId: tenant.id } });
    if (count === 0) throw notFound('API key');
  }
}
