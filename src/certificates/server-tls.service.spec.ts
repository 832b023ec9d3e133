import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppConfig, loadConfig } from '../config/config';
import type { PrismaService } from '../database/prisma.service';
import { generateMasterKey } from './master-key';
import { MasterKeyService } from './master-key.service';
import { createCertificateAuthority, createServerCertificate } from './pki';
import { SERVER_CA_FILE_NAME, SERVER_CERTIFICATE_SECRET, serverNames, ServerTlsService } from './server-tls.service';

/** The ServerSecret table as the service uses it, shared by the "nodes" of a test like a database. */
class SecretStore {
  readonly rows = new Map<string, string>();
  writes = 0;

  private tick = () => new Promise((r) => setImmediate(r));

  readonly serverSecret = {
    findUnique: async ({ where }: { where: { name: string } }) => {
      await this.tick();
      const value = this.rows.get(where.name);
      return value === undefined ? null : { name: where.name, value };
    },
    findUniqueOrThrow: async (args: { where: { name: string } }) => {
      const row = await this.serverSecret.findUnique(args);
      if (!row) throw new Error('not found');
      return row;
    },
    create: async ({ data }: { data: { name: string; value: string } }) => {
      await this.tick();
      if (this.rows.has(data.name)) throw Object.assign(new Error('unique'), { code: 'P2002' });
      this.rows.set(data.name, data.value);
      this.writes++;
      return data;
    },
    updateMany: async ({ where, data }: { where: { name: string; value: string }; data: { value: string } }) => {
      await this.tick();
      if (this.rows.get(where.name) !== where.value) return { count: 0 };
      this.rows.set(where.name, data.value);
      this.writes++;
      return { count: 1 };
    },
  };

  asPrisma(): PrismaService {
    return { db: { serverSecret: this.serverSecret } } as unknown as PrismaService;
  }
}

describe('ServerTlsService', () => {
  const dirs: string[] = [];
  const masterKey = generateMasterKey();

  const node = (store: SecretStore, env: Record<string, string> = {}) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'server-tls-'));
    dirs.push(dataDir);
    const config: AppConfig = loadConfig({ DATA_DIR: dataDir, ADMIN_TOKEN: 'x', MASTER_KEY: masterKey, HOST: '127.0.0.1', ...env });
    return { config, service: new ServerTlsService(config, store.asPrisma(), new MasterKeyService(config)) };
  };

  /** the service as it would run on a machine called `hostname` */
  const onHost = (service: ServerTlsService, hostname: string, host = '0.0.0.0') =>
    Object.assign(service, { localNames: () => serverNames(host, hostname) });

  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('names localhost, the host name, the loopback addresses and a specific HOST', () => {
    expect(serverNames('0.0.0.0', 'broker-1')).toEqual({ hostnames: ['localhost', 'broker-1'], ips: ['127.0.0.1', '::1'] });
    expect(serverNames('10.1.2.3', 'Broker-1.example.com')).toEqual({
      hostnames: ['localhost', 'broker-1.example.com'],
      ips: ['127.0.0.1', '::1', '10.1.2.3'],
    });
    expect(serverNames('::', 'bad_name')).toEqual({ hostnames: ['localhost'], ips: ['127.0.0.1', '::1'] });
  });

  it('generates a server CA and certificate at first start, stores the keys encrypted and writes server-ca.crt', async () => {
    const store = new SecretStore();
    const { config, service } = node(store, { HOST: '127.0.0.2' });
    await service.onModuleInit();
    const { certificatePem, privateKeyPem } = service.material();
    const caPem = service.caCertificatePem() as string;
    expect(readFileSync(join(config.dataDir, SERVER_CA_FILE_NAME), 'utf8')).toBe(`${caPem.trimEnd()}\n`);

    const cert = new X509Certificate(certificatePem);
    const ca = new X509Certificate(caPem);
    expect(ca.ca).toBe(true);
    expect(cert.checkIssued(ca) && cert.verify(ca.publicKey)).toBe(true);
    for (const name of ['localhost', serverNames('0.0.0.0').hostnames[1] ?? 'localhost']) expect(cert.checkHost(name)).toBe(name);
    for (const ip of ['127.0.0.1', '::1', '127.0.0.2']) expect(cert.checkIP(ip)).toBe(ip);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']); // serverAuth
    // the key belongs to the certificate
    expect(createPublicKey(createPrivateKey(privateKeyPem)).export({ type: 'spki', format: 'der' })).toEqual(
      cert.publicKey.export({ type: 'spki', format: 'der' }),
    );
    // nothing in the database holds a key in clear
    for (const value of store.rows.values()) expect(value).not.toContain('PRIVATE KEY');
  });

  it('serves the same certificate on every node sharing the database, also when they start together', async () => {
    const store = new SecretStore();
    const a = node(store).service;
    const b = node(store).service;
    await Promise.all([a.onModuleInit(), b.onModuleInit()]);
    expect(b.material()).toEqual(a.material());
    expect(b.caCertificatePem()).toBe(a.caCertificatePem());
    const writes = store.writes;
    const c = node(store).service;
    await c.onModuleInit();
    expect(c.material()).toEqual(a.material());
    expect(store.writes).toBe(writes); // a later start reads, it does not rewrite
  });

  it('re-issues under the same CA, keeping every name, when a node has names the certificate lacks', async () => {
    const store = new SecretStore();
    const first = onHost(node(store).service, 'node-a');
    await first.onModuleInit();
    const second = onHost(node(store).service, 'node-b', '10.0.0.7');
    await second.onModuleInit();
    expect(second.caCertificatePem()).toBe(first.caCertificatePem());
    const cert = new X509Certificate(second.material().certificatePem);
    for (const name of ['localhost', 'node-a', 'node-b']) expect(cert.checkHost(name)).toBe(name);
    expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
    // node-a restarting now takes the new one as it is
    const again = onHost(node(store).service, 'node-a');
    await again.onModuleInit();
    expect(again.material()).toEqual(second.material());
  });

  /** Puts a certificate with two days left in the store, encrypted as the service does. */
  const storeNearEnd = async (store: SecretStore, running: ServerTlsService) => {
    const mk = new MasterKeyService(node(store).config);
    const storedCa = JSON.parse(store.rows.get('server-ca') as string) as { privateKeyEncrypted: string };
    const ca = { certificatePem: running.caCertificatePem() as string, privateKeyPem: await mk.decrypt(storedCa.privateKeyEncrypted, 'server-ca') };
    const now = Date.now();
    const old = await createServerCertificate({
      ca,
      hostnames: serverNames('0.0.0.0').hostnames,
      ips: ['127.0.0.1', '::1'],
      validityDays: 1,
      validityOverride: { notBefore: new Date(now - 86_400_000), notAfter: new Date(now + 2 * 86_400_000) },
    });
    store.rows.set(
      SERVER_CERTIFICATE_SECRET,
      JSON.stringify({ certificatePem: old.certificatePem, privateKeyEncrypted: await mk.encrypt(old.privateKeyPem, SERVER_CERTIFICATE_SECRET) }),
    );
    return old;
  };
  const daysLeft = (pem: string) => (Date.parse(new X509Certificate(pem).validTo) - Date.now()) / 86_400_000;

  it('replaces a stored certificate that is about to expire', async () => {
    const store = new SecretStore();
    const first = node(store).service;
    await first.onModuleInit();
    const old = await storeNearEnd(store, first);
    const next = node(store).service;
    await next.onModuleInit();
    expect(next.material().certificatePem).not.toBe(old.certificatePem);
    expect(daysLeft(next.material().certificatePem)).toBeGreaterThan(800);
  });

  it('on reload (SIGHUP), replaces the generated certificate near its end and tells its listeners; otherwise changes nothing', async () => {
    const store = new SecretStore();
    const running = node(store).service;
    await running.onModuleInit();
    const served: string[] = [];
    running.onChange((m) => served.push(m.certificatePem));
    const original = running.material();
    await expect(running.reload()).resolves.toBe(false);
    expect(running.material()).toEqual(original);

    const old = await storeNearEnd(store, running);
    await expect(running.reload()).resolves.toBe(true);
    const renewed = running.material().certificatePem;
    expect([original.certificatePem, old.certificatePem]).not.toContain(renewed);
    expect(daysLeft(renewed)).toBeGreaterThan(800);
    expect(served).toEqual([renewed]);
    expect(JSON.parse(store.rows.get(SERVER_CERTIFICATE_SECRET) as string).certificatePem).toBe(renewed);
  });

  it('refuses to start with a MASTER_KEY that does not open the stored keys, saying why', async () => {
    const store = new SecretStore();
    await node(store).service.onModuleInit();
    const stranger = node(store, { MASTER_KEY: generateMasterKey() }).service;
    await expect(stranger.onModuleInit()).rejects.toThrow(/MASTER_KEY cannot decrypt the server-ca key/);
  });

  describe('with TLS_CERT and TLS_KEY', () => {
    const files = async () => {
      const dir = mkdtempSync(join(tmpdir(), 'server-tls-files-'));
      dirs.push(dir);
      const ca = await createCertificateAuthority({ commonName: 'corp CA', keyAlgorithm: 'ec-p256', validityDays: 30 });
      const leaf = await createServerCertificate({ ca, hostnames: ['mqtt.example.com'], ips: [], validityDays: 10 });
      const write = (name: string, content: string) => {
        writeFileSync(join(dir, name), content);
        return join(dir, name);
      };
      return { ca, leaf, write };
    };

    it('serves the files, and as server CA the top of the chain TLS_CERT holds', async () => {
      const { ca, leaf, write } = await files();
      const store = new SecretStore();
      const { service } = node(store, { TLS_CERT: write('chain.pem', `${leaf.certificatePem}\n${ca.certificatePem}\n`), TLS_KEY: write('key.pem', leaf.privateKeyPem) });
      await service.onModuleInit();
      expect(service.material().privateKeyPem).toBe(leaf.privateKeyPem);
      expect(service.caCertificatePem()).toBe(new X509Certificate(ca.certificatePem).toString());
      expect(store.rows.size).toBe(0); // nothing generated

      const alone = node(store, { TLS_CERT: write('leaf.pem', leaf.certificatePem), TLS_KEY: write('key.pem', leaf.privateKeyPem) }).service;
      await alone.onModuleInit();
      expect(alone.caCertificatePem()).toBeNull();
    });

    it('on reload (SIGHUP), serves the files as they are now; files that do not fit leave the current pair serving', async () => {
      const { ca, leaf, write } = await files();
      const renewed = await createServerCertificate({ ca, hostnames: ['mqtt.example.com'], ips: [], validityDays: 20 });
      const { service } = node(new SecretStore(), { TLS_CERT: write('cert.pem', leaf.certificatePem), TLS_KEY: write('key.pem', leaf.privateKeyPem) });
      await service.onModuleInit();
      const served: string[] = [];
      service.onChange((m) => served.push(m.certificatePem));
      await expect(service.reload()).resolves.toBe(false);

      // the key renewed first, the certificate not yet: refused, the old pair still serves
      write('key.pem', renewed.privateKeyPem);
      await expect(service.reload()).rejects.toThrow(/TLS_CERT\/TLS_KEY are not a usable certificate and matching key/);
      expect(service.material()).toEqual({ certificatePem: leaf.certificatePem, privateKeyPem: leaf.privateKeyPem });
      expect(served).toEqual([]);

      write('cert.pem', `${renewed.certificatePem}\n${ca.certificatePem}\n`);
      await expect(service.reload()).resolves.toBe(true);
      expect(service.material().privateKeyPem).toBe(renewed.privateKeyPem);
      expect(served).toEqual([`${renewed.certificatePem}\n${ca.certificatePem}\n`]);
      expect(service.caCertificatePem()).toBe(new X509Certificate(ca.certificatePem).toString());
    });

    it('refuses a key that does not match, or only one of the two variables', async () => {
      const { ca, leaf, write } = await files();
      const store = new SecretStore();
      const mismatched = node(store, { TLS_CERT: write('leaf.pem', leaf.certificatePem), TLS_KEY: write('ca.key', ca.privateKeyPem) }).service;
      await expect(mismatched.onModuleInit()).rejects.toThrow(/TLS_CERT\/TLS_KEY/);
      const half = node(store, { TLS_CERT: write('leaf.pem', leaf.certificatePem) }).service;
      await expect(half.onModuleInit()).rejects.toThrow('TLS_CERT and TLS_KEY must be set together');
    });
  });
});
