import { Inject, Injectable } from '@nestjs/common';
import type { Device, Tenant } from '../generated/prisma/client';
import { ChangeBus } from '../broker/identity/change-bus';
import { APP_CONFIG, AppConfig } from '../config/config';
import { hashPassword } from '../common/bcrypt-pool';
import { conflict, notFound } from '../common/errors';
import { newId, newSecret } from '../common/ids';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { isUniqueViolation } from '../tenants/tenants.service';
import type { CreateDeviceDto } from './device.dto';

export interface DeviceView {
  name: string;
  enabled: boolean;
  hasPassword: boolean;
  createdAt: string;
  updatedAt: string;
}

export function deviceView(d: Device): DeviceView {
  return {
    name: d.name,
    enabled: d.enabled,
    hasPassword: d.passwordHash !== null,
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
  };
}

/** Hooks other capabilities run when a device goes away (certificates are revoked). */
export interface DeviceLifecycleHook {
  onDeviceDeleting?(tenant: Tenant, device: Device): Promise<void>;
}

@Injectable()
export class DevicesService {
  private readonly hooks: DeviceLifecycleHook[] = [];

  constructor(
    private readonly prisma: PrismaService,
    private readonly changes: ChangeBus,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  addLifecycleHook(hook: DeviceLifecycleHook): void {
    this.hooks.push(hook);
  }

  async get(tenant: Tenant, name: string): Promise<Device> {
    const device = await this.prisma.db.device.findUnique({ where: { tenantId_name: { tenantId: tenant.id, name } } });
    if (!device) throw notFound('device');
    return device;
  }

  /** Returns the generated password when none was given: the only time it is ever shown. */
  async create(tenant: Tenant, dto: CreateDeviceDto): Promise<{ device: Device; generatedPassword?: string }> {
    const generatedPassword = dto.password === undefined ? newSecret(18) : undefined;
    const passwordHash = await hashPassword(dto.password ?? (generatedPassword as string), this.config.bcryptCost);
    try {
      const device = await this.prisma.db.device.create({
        data: { id: newId(), tenantId: tenant.id, name: dto.name, passwordHash, enabled: dto.enabled ?? true },
      });
      await this.changes.publish({ kind: 'device', tenantId: tenant.id, name: device.name, disconnect: false });
      return { device, generatedPassword };
    } catch (err) {
      if (isUniqueViolation(err)) throw conflict(`device "${dto.name}" already exists`);
      throw err;
    }
  }

  async list(tenant: Tenant, limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<Page<DeviceView>> {
    const after = decodeCursor(cursor);
    const rows = await this.prisma.db.device.findMany({
      where: { tenantId: tenant.id, ...(after !== undefined ? { name: { gt: after } } : {}) },
      orderBy: { name: 'asc' },
      take: limit + 1,
    });
    return toPage(rows, limit, (d) => d.name, deviceView);
  }

  async update(tenant: Tenant, name: string, patch: { enabled?: boolean }): Promise<Device> {
    const device = await this.get(tenant, name);
    const updated = await this.prisma.db.device.update({ where: { id: device.id }, data: { enabled: patch.enabled } });
    await this.changes.publish({ kind: 'device', tenantId: tenant.id, name, disconnect: updated.enabled === false });
    return updated;
  }

  /** Sets (or generates) the password; live sessions of the device are disconnected either way. */
  async setPassword(tenant: Tenant, name: string, password?: string): Promise<{ generatedPassword?: string }> {
    const device = await this.get(tenant, name);
    const generatedPassword = password === undefined ? newSecret(18) : undefined;
    const passwordHash = await hashPassword(password ?? (generatedPassword as string), this.config.bcryptCost);
    await this.prisma.db.device.update({ where: { id: device.id }, data: { passwordHash } });
    await this.changes.publish({ kind: 'device', tenantId: tenant.id, name, disconnect: true });
    return { generatedPassword };
  }

  async remove(tenant: Tenant, name: string): Promise<Device> {
    const device = await this.get(tenant, name);
    for (const hook of this.hooks) await hook.onDeviceDeleting?.(tenant, device);
    await this.prisma.db.device.delete({ where: { id: device.id } });
    await this.changes.publish({ kind: 'device', tenantId: tenant.id, name, disconnect: true });
    // its rules went with it (cascade)
    await this.changes.publish({ kind: 'rules', tenantId: tenant.id });
    return device;
  }
}
