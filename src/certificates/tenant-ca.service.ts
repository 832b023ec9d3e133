import { Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { ClientCertificateAuth } from '../broker/identity/client-certificate-auth';
import { IdentityService } from '../broker/identity/identity.service';
import type { Invalidation } from '../broker/identity/snapshot';
import { AppError } from '../common/errors';
import { PrismaService } from '../database/prisma.service';
import type { Tenant } from '../generated/prisma/client';
import { TenantsService } from '../tenants/tenants.service';
import { SecretDecryptionError } from './master-key';
import { MasterKeyService } from './master-key.service';
import { pemFile } from './pem';
import { CertificateAuthorityPem, createCertificateAuthority } from './pki';

const TENANT_CA_VALIDITY_DAYS = 3650;
/** how long an issuer name that named no tenant CA is not looked up again */
const UNKNOWN_ISSUER_TTL_MS = 10_000;
const MAX_UNKNOWN_ISSUERS = 10_000;

/** The subject of a tenant's CA: the slug is in it, so an unknown issuer name can be looked up. */
const caCommonName = (slug: string): string => `${slug} device CA`;
const CA_SUBJECT_RE = /^CN=([a-z0-9][a-z0-9-]{1,38}[a-z0-9]) device CA$/;

/** Associated data of a tenant CA's encrypted key: the ciphertext only opens in its own row. */
export const tenantCaAssociatedData = (tenantId: string): string => `tenant-ca:${tenantId}`;

/**
 * One certificate authority per tenant, created with the tenant, its private key encrypted with
 * MASTER_KEY in the tenant row. Keeps the broker's CA index (ClientCertificateAuth) current on
 * every node: loaded at start, then following tenant creations and deletions through the
 * identity changes, whichever node made them.
 */
@Injectable()
export class TenantCaService implements OnModuleInit {
  private readonly logger = new Logger('TenantCa');
  private readonly unknownIssuers = new Map<string, number>();

  constructor(
    private readonly prisma: PrismaService,
    private readonly masterKey: MasterKeyService,
    private readonly tenants: TenantsService,
    private readonly identity: IdentityService,
    private readonly index: ClientCertificateAuth,
  ) {}

  async onModuleInit(): Promise<void> {
    this.tenants.addLifecycleHook({ onTenantCreated: (tenant) => this.ensureCa(tenant).then(() => undefined) });
    this.identity.observe((change) => this.follow(change));
    this.index.resolveUnknownIssuer = (issuerDn) => this.resolveUnknownIssuer(issuerDn);
    // tenants created before CAs existed (or whose creation stopped half-way) get one now
    const missing = await this.prisma.db.tenant.findMany({ where: { caCertificatePem: null } });
    for (const tenant of missing) await this.ensureCa(tenant);
    const rows = await this.prisma.db.tenant.findMany({
      where: { caCertificatePem: { not: null } },
      select: { id: true, slug: true, caCertificatePem: true },
    });
    for (const row of rows) this.index.setTenantCa(row.id, row.slug, row.caCertificatePem as string);
    if (missing.length) this.logger.log(`created the CA of ${missing.length} tenant(s) that had none`);
  }

  /** The tenant's CA certificate (PEM), creating the CA if the tenant has none yet. */
  async certificatePem(tenant: Tenant): Promise<string> {
    return tenant.caCertificatePem ?? this.ensureCa(tenant);
  }

  /** The CA with its decrypted private key, to sign with; never leaves the process. */
  async signingCa(tenant: Tenant): Promise<CertificateAuthorityPem> {
    let row = tenant;
    if (!row.caCertificatePem || !row.caPrivateKeyEncrypted) {
      await this.ensureCa(tenant);
      row = await this.prisma.db.tenant.findUniqueOrThrow({ where: { id: tenant.id } });
    }
    try {
      return {
        certificatePem: row.caCertificatePem as string,
        privateKeyPem: await this.masterKey.decrypt(row.caPrivateKeyEncrypted as string, tenantCaAssociatedData(row.id)),
      };
    } catch (err) {
      if (err instanceof SecretDecryptionError) {
        this.logger.error(`the CA key of tenant ${row.slug} does not decrypt with this node's MASTER_KEY`);
        throw new AppError('internal', 'the tenant CA is not usable on this node');
      }
      throw err;
    }
  }

  /**
   * Creates the tenant's CA unless it has one; safe against a concurrent creation (another node
   * starting, a request racing the start-up backfill): the first stored CA wins.
   */
  private async ensureCa(tenant: Tenant): Promise<string> {
    if (tenant.caCertificatePem) return tenant.caCertificatePem;
    const ca = await createCertificateAuthority({
      commonName: caCommonName(tenant.slug),
      keyAlgorithm: 'ec-p256',
      validityDays: TENANT_CA_VALIDITY_DAYS,
    });
    const caPrivateKeyEncrypted = await this.masterKey.encrypt(ca.privateKeyPem, tenantCaAssociatedData(tenant.id));
    const { count } = await this.prisma.db.tenant.updateMany({
      where: { id: tenant.id, caCertificatePem: null },
      data: { caCertificatePem: pemFile(ca.certificatePem), caPrivateKeyEncrypted },
    });
    let pem = pemFile(ca.certificatePem);
    if (count === 0) {
      const current = await this.prisma.db.tenant.findUnique({ where: { id: tenant.id }, select: { caCertificatePem: true } });
      if (!current?.caCertificatePem) throw new AppError('not-found', 'tenant not found');
      pem = current.caCertificatePem;
    }
    this.index.setTenantCa(tenant.id, tenant.slug, pem);
    return pem;
  }

  /**
   * A certificate names an issuer no CA here has: normally a foreign CA, but it may be the CA of
   * a tenant created on another node while this one missed the change. One query per issuer name
   * per UNKNOWN_ISSUER_TTL_MS at most; the signature is still checked by the caller.
   */
  private async resolveUnknownIssuer(issuerDn: string): Promise<boolean> {
    const slug = CA_SUBJECT_RE.exec(issuerDn)?.[1];
    if (slug === undefined) return false;
    const missAt = this.unknownIssuers.get(slug);
    if (missAt !== undefined && Date.now() - missAt < UNKNOWN_ISSUER_TTL_MS) return false;
    if (this.unknownIssuers.size >= MAX_UNKNOWN_ISSUERS) this.unknownIssuers.clear();
    this.unknownIssuers.set(slug, Date.now());
    const row = await this.prisma.db.tenant.findUnique({ where: { slug }, select: { id: true, slug: true, caCertificatePem: true } });
    if (!row?.caCertificatePem || this.index.hasTenantCa(row.id)) return false;
    this.index.setTenantCa(row.id, row.slug, row.caCertificatePem);
    this.unknownIssuers.delete(slug);
    this.logger.warn(`learnt the CA of tenant ${row.slug} at a connect: a tenant change was missed on this node`);
    return true;
  }

  private async follow(change: Invalidation): Promise<void> {
    if (change.kind === 'tenant-deleted') {
      this.index.deleteTenantCa(change.tenantId);
    } else if (change.kind === 'tenant' && !this.index.hasTenantCa(change.tenantId)) {
      // created on another node (a CA never changes once set, so a known one needs no reload)
      const row = await this.prisma.db.tenant.findUnique({
        where: { id: change.tenantId },
        select: { id: true, slug: true, caCertificatePem: true },
      });
      if (row?.caCertificatePem) this.index.setTenantCa(row.id, row.slug, row.caCertificatePem);
      else if (!row) this.index.deleteTenantCa(change.tenantId);
    }
  }
}
