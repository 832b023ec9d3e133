import type { CertificateSnapshot, TenantSnapshot, TenantSource } from './snapshot';

/** A TenantSource over plain objects a test edits, as the database would change. */
export class FakeTenantSource implements TenantSource {
  readonly tenants = new Map<string, TenantSnapshot>();

  async loadTenant(by: { slug: string } | { id: string }): Promise<TenantSnapshot | null> {
    for (const t of this.tenants.values()) {
      if ('slug' in by ? t.slug === by.slug : t.id === by.id) return structuredClone(t);
    }
    return null;
  }

  async loadDevice(tenantId: string, name: string) {
    return structuredClone(this.tenants.get(tenantId)?.devices.find((d) => d.name === name) ?? null);
  }

  async loadRules() {
    return [];
  }

  async loadCertificates(tenantId: string): Promise<CertificateSnapshot[]> {
    return structuredClone(this.tenants.get(tenantId)?.certificates ?? []);
  }
}
