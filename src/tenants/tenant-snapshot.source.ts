import { Injectable } from '@nestjs/common';
import type { AclRuleInput } from '../acl/compiled-acl';
import type { CertificateSnapshot, DeviceSnapshot, TenantSnapshot, TenantSource } from '../broker/identity/snapshot';
import { PrismaService } from '../database/prisma.service';
import { effectiveLimits } from './limits';

const deviceFields = { id: true, name: true, enabled: true, passwordHash: true } as const;
const certificateFields = { serialNumber: true, deviceId: true } as const;

/** Loads what the data plane caches: one query per tenant at the first connect. */
@Injectable()
export class PrismaTenantSource implements TenantSource {
  constructor(private readonly prisma: PrismaService) {}

  async loadTenant(by: { slug: string } | { id: string }): Promise<TenantSnapshot | null> {
    const row = await this.prisma.db.tenant.findUnique({
      where: 'slug' in by ? { slug: by.slug } : { id: by.id },
      include: {
        devices: { select: deviceFields },
        aclRules: { include: { device: { select: { name: true } } }, orderBy: { id: 'asc' } },
        certificates: { where: { status: 'active' }, select: certificateFields },
      },
    });
    if (!row) return null;
    return {
      id: row.id,
      slug: row.slug,
      limits: effectiveLimits(row.limits),
      requireClientCertificates: row.requireClientCertificates,
      defaultAclPermission: row.defaultAclPermission,
      devices: row.devices,
      rules: row.aclRules.map(toRule),
      certificates: row.certificates,
    };
  }

  async loadDevice(tenantId: string, name: string): Promise<DeviceSnapshot | null> {
    return this.prisma.db.device.findUnique({ where: { tenantId_name: { tenantId, name } }, select: deviceFields });
  }

  async loadCertificates(tenantId: string): Promise<CertificateSnapshot[]> {
    return this.prisma.db.certificate.findMany({ where: { tenantId, status: 'active' }, select: certificateFields });
  }

  async loadRules(tenantId: string): Promise<AclRuleInput[]> {
    const rows = await this.prisma.db.aclRule.findMany({
      where: { tenantId },
      include: { device: { select: { name: true } } },
      orderBy: { id: 'asc' },
    });
    return rows.map(toRule);
  }
}

function toRule(r: {
  action: AclRuleInput['action'];
  topic: string;
  permission: AclRuleInput['permission'];
  priority: number;
  device: { name: string } | null;
}): AclRuleInput {
  return { deviceName: r.device?.name ?? null, action: r.action, topic: r.topic, permission: r.permission, priority: r.priority };
}
