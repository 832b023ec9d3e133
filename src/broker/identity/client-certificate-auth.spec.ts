import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { AppConfig, loadConfig } from '../../config/config';
import { DEFAULT_LIMITS } from '../../tenants/limits';
import { createCertificateAuthority, GeneratedCertificate, issueClientCertificate } from '../../certificates/pki';
import type { BrokerClient } from '../session';
import { ClientCertificateAuth } from './client-certificate-auth';
import { IdentityService } from './identity.service';
import type { CertificateSnapshot, TenantSnapshot } from './snapshot';
import { FakeTenantSource as FakeSource } from './fake-tenant-source.test-helper';

const DAY = 86_400_000;

const der = (pem: string) => new X509Certificate(pem).raw;

describe('ClientCertificateAuth', () => {
  let dataDir: string;
  let config: AppConfig;
  let source: FakeSource;
  let identity: IdentityService;
  let auth: ClientCertificateAuth;
  let ca: GeneratedCertificate;

  const tenant = (id: string, slug: string, certificates: CertificateSnapshot[] = []): TenantSnapshot => ({
    id,
    slug,
    limits: { ...DEFAULT_LIMITS },
    requireClientCertificates: false,
    defaultAclPermission: 'deny',
    devices: [
      { id: 'dev-1', name: 'd1', enabled: true, passwordHash: null },
      { id: 'dev-2', name: 'd2', enabled: true, passwordHash: null },
      { id: 'dev-3', name: 'off', enabled: false, passwordHash: null },
    ],
    rules: [],
    certificates,
  });

  const issue = async (commonName: string, deviceId: string | null, signer = ca, tenantId = 'tacme') => {
    const cert = await issueClientCertificate({ ca: signer, commonName, validityDays: 30 });
    if (deviceId) source.tenants.get(tenantId)?.certificates.push({ serialNumber: cert.serialNumber, deviceId });
    return cert;
  };

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'cert-auth-'));
    config = loadConfig({ DATA_DIR: dataDir, ADMIN_TOKEN: 'x', BCRYPT_COST: '4' });
    ca = await createCertificateAuthority({ commonName: 'acme device CA', keyAlgorithm: 'ec-p256', validityDays: 365 });
  });

  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  beforeEach(() => {
    source = new FakeSource();
    source.tenants.set('tacme', tenant('tacme', 'acme'));
    identity = new IdentityService(source, config);
    auth = new ClientCertificateAuth(identity);
    auth.setTenantCa('tacme', 'acme', ca.certificatePem);
  });

  it('authenticates an active certificate of the tenant CA as the device its CN names', async () => {
    const cert = await issue('d1', 'dev-1');
    const result = await auth.check(der(cert.certificatePem), undefined);
    expect(result).toMatchObject({ ok: true, device: { name: 'd1' }, serialNumber: cert.serialNumber });
    expect(result.ok && result.tenant.slug).toBe('acme');
  });

  it('accepts a username only when it is <slug>:<CN> (CONNACK 4 otherwise)', async () => {
    const raw = der((await issue('d1', 'dev-1')).certificatePem);
    expect(await auth.check(raw, 'acme:d1')).toMatchObject({ ok: true });
    for (const username of ['acme:d2', 'other:d1', 'd1', '', 'acme:d1 ']) {
      expect(await auth.check(raw, username)).toMatchObject({ ok: false, returnCode: 4, reason: 'certificate-username-mismatch' });
    }
  });

  it('refuses a certificate that is not (or no longer) active for that very device', async () => {
    const unknown = await issue('d1', null);
    expect(await auth.check(der(unknown.certificatePem), undefined)).toMatchObject({ ok: false, returnCode: 5, reason: 'certificate-revoked' });
    // issued to an earlier device row of the same name (deleted, then the name taken again)
    const stale = await issue('d1', 'dev-old');
    expect(await auth.check(der(stale.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-revoked' });
  });

  it('refuses the certificate of a disabled or unknown device', async () => {
    const off = await issue('off', 'dev-3');
    expect(await auth.check(der(off.certificatePem), undefined)).toMatchObject({ ok: false, returnCode: 5, reason: 'device-disabled' });
    const ghost = await issue('ghost', 'dev-9');
    expect(await auth.check(der(ghost.certificatePem), undefined)).toMatchObject({ ok: false, returnCode: 5, reason: 'certificate-unknown-device' });
  });

  it('refuses foreign CAs, even one copying the tenant CA name, and expired certificates', async () => {
    const rogue = await createCertificateAuthority({ commonName: 'acme device CA', keyAlgorithm: 'ec-p256', validityDays: 365 });
    const forged = await issue('d1', 'dev-1', rogue);
    expect(await auth.check(der(forged.certificatePem), 'acme:d1')).toMatchObject({ ok: false, returnCode: 5, reason: 'certificate-bad-signature' });
    const other = await createCertificateAuthority({ commonName: 'other CA', keyAlgorithm: 'rsa-2048', validityDays: 365 });
    const foreign = await issue('d1', 'dev-1', other);
    expect(await auth.check(der(foreign.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-unknown-issuer' });
    const valid = await issue('d1', 'dev-1');
    expect(await auth.check(der(valid.certificatePem), undefined, Date.now() + 40 * DAY)).toMatchObject({ ok: false, reason: 'certificate-expired' });
  });

  it('refuses certificates of a deleted tenant, also once its slug is taken again', async () => {
    const cert = await issue('d1', 'dev-1');
    // slug reused by a new tenant while this node still holds the old CA
    source.tenants.delete('tacme');
    source.tenants.set('tnew', tenant('tnew', 'acme', [{ serialNumber: cert.serialNumber, deviceId: 'dev-1' }]));
    expect(await auth.check(der(cert.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-unknown-issuer' });
    auth.deleteTenantCa('tacme');
    expect(auth.hasTenantCa('tacme')).toBe(false);
    expect(await auth.check(der(cert.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-unknown-issuer' });
  });

  it('asks for an unknown issuer once, and authenticates when a missed tenant CA is found', async () => {
    const cert = await issue('d1', 'dev-1');
    auth.deleteTenantCa('tacme'); // as if this node had missed the tenant's creation
    const asked: string[] = [];
    auth.resolveUnknownIssuer = async (issuerDn) => {
      asked.push(issuerDn);
      return false;
    };
    expect(await auth.check(der(cert.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-unknown-issuer' });
    auth.resolveUnknownIssuer = async (issuerDn) => {
      asked.push(issuerDn);
      auth.setTenantCa('tacme', 'acme', ca.certificatePem);
      return true;
    };
    expect(await auth.check(der(cert.certificatePem), 'acme:d1')).toMatchObject({ ok: true, serialNumber: cert.serialNumber });
    expect(asked).toEqual(['CN=acme device CA', 'CN=acme device CA']);
    // known issuers never ask, not even for a forged certificate
    const rogue = await createCertificateAuthority({ commonName: 'acme device CA', keyAlgorithm: 'ec-p256', validityDays: 365 });
    await auth.check(der((await issue('d1', 'dev-1', rogue)).certificatePem), undefined);
    expect(asked).toHaveLength(2);
  });

  describe("IdentityService 'certificates' change", () => {
    const session = (authMethod: string, certificateSerial: string | null, deviceName = 'd1') =>
      ({ tenantSession: { authMethod, certificateSerial, deviceName } }) as unknown as BrokerClient;

    it('reloads the active set and kicks only the sessions that used a certificate no longer active', async () => {
      const keep = await issue('d1', 'dev-1');
      const drop = await issue('d1', 'dev-1');
      const runtime = await identity.tenantBySlug('acme');
      if (!runtime) throw new Error('tenant not loaded');
      const byDropped = session('certificate', drop.serialNumber);
      const byKept = session('certificate', keep.serialNumber);
      const byPassword = session('password', null);
      for (const c of [byDropped, byKept, byPassword]) runtime.clients.add(c);
      const kicked: BrokerClient[][] = [];
      identity.kick = (clients) => kicked.push(clients);

      const snapshot = source.tenants.get('tacme') as TenantSnapshot;
      snapshot.certificates = snapshot.certificates.filter((c) => c.serialNumber !== drop.serialNumber);
      // not yet announced: the cached set still accepts it
      expect(await auth.check(der(drop.certificatePem), undefined)).toMatchObject({ ok: true });
      await identity.apply({ kind: 'certificates', tenantId: 'tacme' });
      expect(kicked).toEqual([[byDropped]]);
      expect(await auth.check(der(drop.certificatePem), undefined)).toMatchObject({ ok: false, reason: 'certificate-revoked' });
      expect(await auth.check(der(keep.certificatePem), undefined)).toMatchObject({ ok: true });
    });

    it('tells observers about every change, also for tenants this node has not cached', async () => {
      const seen: string[] = [];
      identity.observe(async (change) => {
        seen.push(`${change.kind}:${change.tenantId}`);
      });
      await identity.apply({ kind: 'tenant', tenantId: 'tuncached' });
      await identity.apply({ kind: 'tenant-deleted', tenantId: 'tuncached' });
      expect(seen).toEqual(['tenant:tuncached', 'tenant-deleted:tuncached']);
    });
  });
});
