import { Injectable } from '@nestjs/common';
import type { AclRule, Tenant } from '../generated/prisma/client';
import { ChangeBus } from '../broker/identity/change-bus';
import { badField, notFound } from '../common/errors';
import { newId } from '../common/ids';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import type { CreateAclRuleDto, UpdateAclRuleDto } from './acl.dto';

export interface AclRuleView {
  id: string;
  device: string | null;
  action: AclRule['action'];
  topic: string;
  permission: AclRule['permission'];
  priority: number;
  createdAt: string;
  updatedAt: string;
}

type RuleWithDevice = AclRule & { device: { name: string } | null };

export function aclRuleView(r: RuleWithDevice): AclRuleView {
  return {
    id: r.id,
    device: r.device?.name ?? null,
    action: r.action,
    topic: r.topic,
    permission: r.permission,
    priority: r.priority,
    createdAt: r.createdAt.toISOString(),
    updatedAt: r.updatedAt.toISOString(),
  };
}

const withDevice = { device: { select: { name: true } } } as const;

@Injectable()
export class AclService {
  constructor(
    private readonly prisma: PrismaService,
    private readonly changes: ChangeBus,
  ) {}

  private async deviceId(tenant: Tenant, name: string | null | undefined): Promise<string | null | undefined> {
    if (name === undefined || name === null) return name;
    const device = await this.prisma.db.device.findUnique({
      where: { tenantId_name: { tenantId: tenant.id, name } },
      select: { id: true },
    });
    if (!device) throw badField('device', `no device "${name}" in this tenant`);
    return device.id;
  }

  async create(tenant: Tenant, dto: CreateAclRuleDto): Promise<AclRuleView> {
    const deviceId = (await this.deviceId(tenant, dto.device)) ?? null;
    const rule = await this.prisma.db.aclRule.create({
      data: {
        id: newId(),
        tenantId: tenant.id,
        deviceId,
        action: dto.action,
        topic: dto.topic,
        permission: dto.permission,
        priority: dto.priority ?? 0,
      },
      include: withDevice,
    });
    await this.changes.publish({ kind: 'rules', tenantId: tenant.id });
    return aclRuleView(rule);
  }

  async list(tenant: Tenant, limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<Page<AclRuleView>> {
    const after = decodeCursor(cursor);
    const rows = await this.prisma.db.aclRule.findMany({
      where: { tenantId: tenant.id, ...(after !== undefined ? { id: { gt: after } } : {}) },
      orderBy: { id: 'asc' },
      take: limit + 1,
      include: withDevice,
    });
    return toPage(rows, limit, (r) => r.id, aclRuleView);
  }

  async get(tenant: Tenant, id: string): Promise<RuleWithDevice> {
    const rule = await this.prisma.db.aclRule.findFirst({ where: { id, tenantId: tenant.id }, include: withDevice });
    if (!rule) throw notFound('ACL rule');
    return rule;
  }

  async update(tenant: Tenant, id: string, dto: UpdateAclRuleDto): Promise<AclRuleView> {
    const rule = await this.get(tenant, id);
    const deviceId = await this.deviceId(tenant, dto.device);
    const updated = await this.prisma.db.aclRule.update({
      where: { id: rule.id },
      data: { deviceId, action: dto.action, topic: dto.topic, permission: dto.permission, priority: dto.priority },
      include: withDevice,
    });
    await this.changes.publish({ kind: 'rules', tenantId: tenant.id });
    return aclRuleView(updated);
  }

  async remove(tenant: Tenant, id: string): Promise<AclRuleView> {
    const rule = await this.get(tenant, id);
    await this.prisma.db.aclRule.delete({ where: { id: rule.id } });
    await this.changes.publish({ kind: 'rules', tenantId: tenant.id });
    return aclRuleView(rule);
  }
}
