import type { AclRuleInput } from '../../acl/compiled-acl';
import type { TenantLimits } from '../../tenants/limits';

/** What the data plane knows of a tenant: loaded on a cache miss, replaced on invalidation. */
export interface TenantSnapshot {
  id: string;
  slug: string;
  limits: TenantLimits;
  requireClientCertificates: boolean;
  defaultAclPermission: 'allow' | 'deny';
  devices: DeviceSnapshot[];
  rules: AclRuleInput[];
  /** the tenant's active client certificates (revoked ones are simply absent) */
  certificates: CertificateSnapshot[];
}

/** An active client certificate: its serial (normalised, lower-case hex) and the device row it belongs to. */
export interface CertificateSnapshot {
  serialNumber: string;
  deviceId: string;
}

export interface DeviceSnapshot {
  id: string;
  name: string;
  enabled: boolean;
  passwordHash: string | null;
}

/** Implemented by the control plane (database); the broker only sees this interface. */
export interface TenantSource {
  loadTenant(by: { slug: string } | { id: string }): Promise<TenantSnapshot | null>;
  loadDevice(tenantId: string, name: string): Promise<DeviceSnapshot | null>;
  loadRules(tenantId: string): Promise<AclRuleInput[]>;
  loadCertificates(tenantId: string): Promise<CertificateSnapshot[]>;
}

export const TENANT_SOURCE = Symbol('TENANT_SOURCE');

/** Changes the REST API announces; delivered locally, and across nodes when clustered. */
export type Invalidation =
  | { kind: 'tenant'; tenantId: string }
  | { kind: 'tenant-deleted'; tenantId: string }
  | { kind: 'device'; tenantId: string; name: string; disconnect: boolean }
  | { kind: 'rules'; tenantId: string }
  /** a certificate of the tenant was issued or revoked */
  | { kind: 'certificates'; tenantId: string };
