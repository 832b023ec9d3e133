import { Injectable, OnModuleInit } from '@nestjs/common';
import { ChangeBus } from '../broker/identity/change-bus';
import { badField, notFound } from '../common/errors';
import { newId } from '../common/ids';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { PrismaService } from '../database/prisma.service';
import { DevicesService } from '../devices/devices.service';
import type { Certificate, Device, Tenant } from '../generated/prisma/client';
import { CertificateView, DEFAULT_CERTIFICATE_VALIDITY_DAYS, IssuedCertificateView } from './certificate.dto';
import { IssuedCertificate, issueClientCertificate, PkiInputError, ValidityOverride } from './pki';
import { pemFile } from './pem';
import { TenantCaService } from './tenant-ca.service';

export function certificateView(c: Certificate, deviceName: string): CertificateView {
  return {
    id: c.id,
    device: deviceName,
    serialNumber: c.serialNumber,
    fingerprintSha256: c.fingerprintSha256,
    notBefore: c.notBefore.toISOString(),
    notAfter: c.notAfter.toISOString(),
    status: c.status,
    revokedAt: c.revokedAt ? c.revokedAt.toISOString() : null,
    createdAt: c.createdAt.toISOString(),
    certificatePem: c.certificatePem,
  };
}

/**
 * Device certificates signed by the tenant CA: issued from a CSR or with a generated key
 * (returned once, never stored), listed, revoked. Every change reaches the brokers' in-memory
 * certificate sets through the ChangeBus before the request returns.
 */
@Injectable()
export class CertificatesService implements OnModuleInit {
  constructor(
    private readonly prisma: PrismaService,
    private readonly changes: ChangeBus,
    private readonly devices: DevicesService,
    private readonly cas: TenantCaService,
  ) {}

  onModuleInit(): void {
    this.devices.addLifecycleHook({ onDeviceDeleting: (tenant, device) => this.revokeAllOf(tenant, device) });
  }

  async issue(
    tenant: Tenant,
    deviceName: string,
    request: { csr?: string; validityDays?: number },
    /** @internal tests only (expired / not-yet-valid certificates); never from a request */
    validityOverride?: ValidityOverride,
  ): Promise<IssuedCertificateView> {
    const device = await this.devices.get(tenant, deviceName);
    const ca = await this.cas.signingCa(tenant);
    let issued: IssuedCertificate;
    try {
      issued = await issueClientCertificate({
        ca,
        commonName: device.name,
        csrPem: request.csr,
        validityDays: request.validityDays ?? DEFAULT_CERTIFICATE_VALIDITY_DAYS,
        validityOverride,
      });
    } catch (err) {
      if (err instanceof PkiInputError) throw badField(err.field, err.message);
      throw err;
    }
    const row = await this.prisma.db.certificate.create({
      data: {
        id: newId(),
        tenantId: tenant.id,
        deviceId: device.id,
        serialNumber: issued.serialNumber,
        fingerprintSha256: issued.fingerprintSha256,
        notBefore: issued.notBefore,
        notAfter: issued.notAfter,
        status: 'active',
        certificatePem: pemFile(issued.certificatePem),
      },
    });
    await this.changes.publish({ kind: 'certificates', tenantId: tenant.id });
    return {
      ...certificateView(row, device.name),
      ...(issued.privateKeyPem !== undefined ? { privateKeyPem: issued.privateKeyPem } : {}),
      caPem: pemFile(ca.certificatePem),
    };
  }

  async list(tenant: Tenant, deviceName: string, limit = DEFAULT_PAGE_SIZE, cursor?: string): Promise<Page<CertificateView>> {
    const device = await this.devices.get(tenant, deviceName);
    const after = decodeCursor(cursor);
    const rows = await this.prisma.db.certificate.findMany({
      where: { deviceId: device.id, ...(after !== undefined ? { id: { gt: after } } : {}) },
      orderBy: { id: 'asc' },
      take: limit + 1,
    });
    return toPage(rows, limit, (c) => c.id, (c) => certificateView(c, device.name));
  }

  /** Revokes one certificate (idempotent); sessions opened with it are disconnected. */
  async revoke(tenant: Tenant, deviceName: string, id: string): Promise<CertificateView> {
    const device = await this.devices.get(tenant, deviceName);
    const row = await this.prisma.db.certificate.findFirst({ where: { id, deviceId: device.id } });
    if (!row) throw notFound('certificate');
    if (row.status === 'revoked') return certificateView(row, device.name);
    const updated = await this.prisma.db.certificate.update({
      where: { id: row.id },
      data: { status: 'revoked', revokedAt: new Date() },
    });
    await this.changes.publish({ kind: 'certificates', tenantId: tenant.id });
    return certificateView(updated, device.name);
  }

  /**
   * A deleted device takes its certificates along (the rows go by cascade); they are revoked
   * first, so brokers drop them from their active sets before the name can be reused.
   */
  private async revokeAllOf(tenant: Tenant, device: Device): Promise<void> {
    const { count } = await this.prisma.db.certificate.updateMany({
      where: { deviceId: device.id, status: 'active' },
      data: { status: 'revoked', revokedAt: new Date() },
    });
    if (count > 0) await this.changes.publish({ kind: 'certificates', tenantId: tenant.id });
  }
}
