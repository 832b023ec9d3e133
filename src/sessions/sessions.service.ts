import { Inject, Injectable } from '@nestjs/common';
import type { Tenant } from '../generated/prisma/client';
import { notFound } from '../common/errors';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { SESSION_SOURCE, SessionDetail, SessionSource, SessionView } from './session-source';

@Injectable()
export class SessionsService {
  constructor(@Inject(SESSION_SOURCE) private readonly source: SessionSource) {}

  async list(
    tenant: Tenant,
    q: { device?: string; clientIdPrefix?: string; limit?: number; cursor?: string },
  ): Promise<Page<SessionView>> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const rows = await this.source.list(tenant.id, {
      after: decodeCursor(q.cursor),
      limit: limit + 1,
      device: q.device,
      clientIdPrefix: q.clientIdPrefix,
    });
    return toPage(rows, limit, (s) => s.clientId, (s) => s);
  }

  async get(tenant: Tenant, clientId: string): Promise<SessionDetail> {
    const session = await this.source.get(tenant.id, clientId);
    if (!session) throw notFound('session');
    return session;
  }

  async kick(tenant: Tenant, clientId: string): Promise<void> {
    if (!(await this.source.kick(tenant.id, clientId))) throw notFound('session');
  }
}
