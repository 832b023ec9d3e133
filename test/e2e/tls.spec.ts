import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { IClientOptions } from 'mqtt';
import { ClientCertificateAuth } from '../../src/broker/identity/client-certificate-auth';
import { CertificatesService } from '../../src/certificates/certificates.service';
import { TenantsService } from '../../src/tenants/tenants.service';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { closedByServer, connect, mosquittoSub, payloadLines, run, subackCodes, TestClient } from '../helpers/mqtt';

interface Issued {
  id: string;
  device: string;
  serialNumber: string;
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
  status: 'active' | 'revoked';
  revokedAt: string | null;
  certificatePem: string;
  privateKeyPem?: string;
  caPem: string;
}

const DAY = 86_400_000;

/**
 * TLS and client certificates through real peers: mosquitto_pub/mosquitto_sub and openssl
 * against MQTTS, mqtt.js against MQTTS and secure WebSockets, certificates issued over REST.
 */
describe(`TLS and client certificates (${databaseKind()})`, () => {
  let app: TestApp;
  let dir: string;
  let serverCaFile: string;
  const open: TestClient[] = [];
  const pw = 'correct-horse-battery';

  const file = async (name: string, content: string) => {
    const path = join(dir, name);
    await fs.writeFile(path, content);
    return path;
  };

  const issue = async (slug: string, device: string, body: Record<string, unknown> = {}) => {
    const res = await app.api<Issued>('POST', `/api/v1/tenants/${slug}/devices/${device}/certificates`, body);
    if (res.status !== 201) throw new Error(`issue ${slug}/${device}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };

  /** a certificate and key on disk, for the mosquitto clients */
  const onDisk = async (issued: Issued, keyPem = issued.privateKeyPem as string) => ({
    cert: await file(`${issued.serialNumber}.crt`, issued.certificatePem),
    key: await file(`${issued.serialNumber}.key`, keyPem),
  });

  const revoke = async (slug: string, device: string, id: string) => {
    const res = await app.api('POST', `/api/v1/tenants/${slug}/devices/${device}/certificates/${id}/revoke`);
    expect(res.status).toBe(200);
    return res.body;
  };

  const tlsOptions = (issued?: Issued, extra: IClientOptions = {}): IClientOptions => ({
    ca: serverCaPem,
    ...(issued ? { cert: issued.certificatePem, key: issued.privateKeyPem } : {}),
    ...extra,
  });
  let serverCaPem: string;

  const mqtts = async (opts: IClientOptions, url = `mqtts://127.0.0.1:${app.mqttsPort}`) => {
    const c = await connect(app.mqttsPort, opts, url);
    open.push(c);
    return c;
  };

  /** CONNACK return code of a refused connect over MQTTS (throws if accepted) */
  const refusedOverTls = (opts: IClientOptions): Promise<number> =>
    new Promise((resolve, reject) => {
      const client = mqtt.connect(`mqtts://127.0.0.1:${app.mqttsPort}`, {
        reconnectPeriod: 0,
        connectTimeout: 5000,
        protocolVersion: 4,
        ...opts,
      });
      client.on('connect', () => {
        client.end(true);
        reject(new Error('connection was accepted'));
      });
      client.on('error', (err: Error & { code?: number | string }) => {
        client.end(true);
        if (typeof err.code === 'number') resolve(err.code);
        else reject(err);
      });
    });

  const mosquittoTls = (extra: string[]) => [
    '-h',
    '127.0.0.1',
    '-p',
    String(app.mqttsPort),
    '--cafile',
    serverCaFile,
    ...extra,
  ];

  beforeAll(async () => {
    dir = await fs.mkdtemp(join(tmpdir(), 'tls-e2e-'));
    app = await startTestApp();
    for (const slug of ['alpha', 'bravo']) {
      await app.createTenant(slug);
      for (const name of ['d1', 'd2']) await app.createDevice(slug, name, pw);
      await app.allow(slug);
    }
    const res = await app.api<string>('GET', '/api/v1/server-ca', undefined, null);
    serverCaPem = res.body;
    serverCaFile = await file('server-ca.crt', serverCaPem);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
    if (dir) await fs.rm(dir, { recursive: true, force: true });
  });

  describe('the server certificate', () => {
    it('serves the server CA without authentication, as written under DATA_DIR', async () => {
      const res = await app.api<string>('GET', '/api/v1/server-ca', undefined, null);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/x-pem-file/);
      expect(res.body).toMatch(/^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n?$/);
      expect(await fs.readFile(join(app.config.dataDir, 'server-ca.crt'), 'utf8')).toBe(res.body);
    });

    it('lets mosquitto_pub --cafile verify the broker (tutorial flow over 8883), and fails with another CA', async () => {
      const sub = await mosquittoSub(mosquittoTls(['-u', 'alpha:d2', '-P', pw, '-t', 'tls/news', '-C', '1']));
      const pub = await run('mosquitto_pub', mosquittoTls(['-u', 'alpha:d1', '-P', pw, '-t', 'tls/news', '-m', 'Hello TLS']));
      expect(pub).toMatchObject({ code: 0 });
      const out = await sub.done;
      expect(payloadLines(out.stdout)).toEqual(['Hello TLS']);

      // the host name is checked too: localhost is in the SAN
      const byName = await run('mosquitto_pub', [
        ...mosquittoTls(['-u', 'alpha:d1', '-P', pw, '-t', 'tls/x', '-m', 'x']).map((a) => (a === '127.0.0.1' ? 'localhost' : a)),
      ]);
      expect(byName).toMatchObject({ code: 0 });

      const tenantCa = await file('alpha-ca-as-server-ca.crt', (await app.api<string>('GET', '/api/v1/tenants/alpha/ca')).body);
      const wrongCa = await run('mosquitto_pub', [
        '-h', '127.0.0.1', '-p', String(app.mqttsPort), '--cafile', tenantCa, '-u', 'alpha:d1', '-P', pw, '-t', 'tls/x', '-m', 'x',
      ]);
      expect(wrongCa.code).not.toBe(0);
    });

    it('refuses TLS 1.0 and 1.1 and accepts TLS 1.2 and 1.3', async () => {
      const sClient = (version: string, extra: string[] = []) =>
        run('openssl', ['s_client', '-connect', `127.0.0.1:${app.mqttsPort}`, version, '-CAfile', serverCaFile, ...extra]);
      for (const old of ['-tls1', '-tls1_1']) {
        // without @SECLEVEL=0 Debian's OpenSSL refuses these versions itself, which would prove nothing
        const r = await sClient(old, ['-cipher', 'DEFAULT@SECLEVEL=0']);
        expect(r.code).not.toBe(0);
        expect(r.stdout + r.stderr).toMatch(/alert protocol version|unsupported protocol/i);
      }
      for (const modern of ['-tls1_2', '-tls1_3']) {
        const r = await sClient(modern);
        expect(r.stdout).toContain('Verify return code: 0 (ok)');
      }
    });

    it('serves MQTT over secure WebSockets on WSS_PORT at /mqtt, verified with the server CA', async () => {
      const url = `wss://127.0.0.1:${app.wssPort}/mqtt`;
      const ws = await mqtts({ ca: serverCaPem, username: 'alpha:d1', password: pw }, url);
      const tcp = await connect(app.mqttPort, { username: 'alpha:d2', password: pw });
      open.push(tcp);
      await ws.subscribe('wss/test');
      await tcp.publish('wss/test', 'over-wss');
      expect(await ws.next()).toMatchObject({ topic: 'wss/test', payload: 'over-wss' });

      // with a client certificate instead of a password
      const issued = await issue('alpha', 'd2');
      const byCert = await mqtts(tlsOptions(issued), url);
      await byCert.subscribe('wss/cert');
      await tcp.publish('wss/cert', 'to-cert');
      expect(await byCert.next()).toMatchObject({ payload: 'to-cert' });

      // the client really verifies: without the server CA the handshake fails
      await expect(mqtt.connectAsync(url, { reconnectPeriod: 0, username: 'alpha:d1', password: pw })).rejects.toThrow(
        /self.signed|unable to (get|verify)/i,
      );
    });
  });

  describe('the tenant CA and device certificates', () => {
    it('serves each tenant its CA as PEM; tenant keys read their own only', async () => {
      const alpha = await app.api<string>('GET', '/api/v1/tenants/alpha/ca');
      const bravo = await app.api<string>('GET', '/api/v1/tenants/bravo/ca');
      expect(alpha.status).toBe(200);
      expect(alpha.headers.get('content-type')).toMatch(/^application\/x-pem-file/);
      expect(alpha.body).toContain('-----BEGIN CERTIFICATE-----');
      expect(bravo.body).not.toBe(alpha.body);
      const text = await run('openssl', ['x509', '-noout', '-subject', '-ext', 'basicConstraints', '-in', await file('alpha-ca.crt', alpha.body)]);
      expect(text.stdout).toMatch(/CN\s*=\s*alpha device CA/);
      expect(text.stdout).toContain('CA:TRUE');

      const key = await app.api<{ key: string }>('POST', '/api/v1/tenants/alpha/api-keys', { name: 'ca-reader' });
      expect(key.status).toBe(201);
      expect((await app.api<string>('GET', '/api/v1/tenants/alpha/ca', undefined, key.body.key)).body).toBe(alpha.body);
      expect((await app.api('GET', '/api/v1/tenants/bravo/ca', undefined, key.body.key)).status).toBe(404);
      expect((await app.api('POST', '/api/v1/tenants/bravo/devices/d1/certificates', {}, key.body.key)).status).toBe(404);
      expect((await app.api('GET', '/api/v1/tenants/bravo/devices/d1/certificates', undefined, key.body.key)).status).toBe(404);
      expect((await app.api('GET', '/api/v1/tenants/alpha/ca', undefined, null)).status).toBe(401);
      expect((await app.api('GET', '/api/v1/tenants/nosuch/ca')).status).toBe(404);
    });

    it('issues a certificate with a generated key: openssl verifies it, mosquitto_pub connects with it and no password', async () => {
      const issued = await issue('alpha', 'd1');
      const ca = (await app.api<string>('GET', '/api/v1/tenants/alpha/ca')).body;
      expect(issued).toMatchObject({ device: 'd1', status: 'active', revokedAt: null, caPem: ca });
      expect(issued.privateKeyPem).toContain('-----BEGIN PRIVATE KEY-----');
      expect(issued.serialNumber).toMatch(/^[1-9a-f][0-9a-f]*$/);
      expect(Date.parse(issued.notAfter) - Date.parse(issued.notBefore)).toBeGreaterThanOrEqual(365 * DAY);

      const { cert, key } = await onDisk(issued);
      const caFile = await file('alpha-ca-verify.crt', ca);
      const verify = await run('openssl', ['verify', '-purpose', 'sslclient', '-CAfile', caFile, cert]);
      expect(verify).toMatchObject({ code: 0 });
      expect(verify.stdout).toContain(': OK');
      const facts = await run('openssl', ['x509', '-noout', '-subject', '-serial', '-fingerprint', '-sha256', '-in', cert]);
      expect(facts.stdout).toMatch(/subject=CN\s*=\s*d1\n/);
      expect(facts.stdout.match(/serial=([0-9A-F]+)/)?.[1].replace(/^0+/, '').toLowerCase()).toBe(issued.serialNumber);
      expect(facts.stdout.match(/Fingerprint=([0-9A-F:]+)/)?.[1].replace(/:/g, '').toLowerCase()).toBe(issued.fingerprintSha256);

      const sub = await mosquittoSub(mosquittoTls(['-u', 'alpha:d2', '-P', pw, '-t', 'cert/news', '-C', '1']));
      const pub = await run('mosquitto_pub', mosquittoTls(['--cert', cert, '--key', key, '-t', 'cert/news', '-m', 'signed by alpha']));
      expect(pub).toMatchObject({ code: 0 });
      expect(payloadLines((await sub.done).stdout)).toEqual(['signed by alpha']);
    });

    it('issues a certificate for a CSR made by openssl req: no private key in the answer, CN is the device name', async () => {
      const req = await run('openssl', [
        'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
        '-keyout', join(dir, 'csr-d2.key'), '-out', join(dir, 'csr-d2.csr'), '-subj', '/CN=not-the-device/O=ignored',
      ]);
      expect(req.code).toBe(0);
      const csr = await fs.readFile(join(dir, 'csr-d2.csr'), 'utf8');
      const issued = await issue('alpha', 'd2', { csr, validityDays: 30 });
      expect(issued.privateKeyPem).toBeUndefined();
      expect(Date.parse(issued.notAfter) - Date.now()).toBeLessThanOrEqual(30 * DAY);
      expect(Date.parse(issued.notAfter) - Date.now()).toBeGreaterThan(29 * DAY);
      const cert = await file('csr-d2.crt', issued.certificatePem);
      expect((await run('openssl', ['x509', '-noout', '-subject', '-in', cert])).stdout).toMatch(/^subject=CN\s*=\s*d2\n$/);
      const verify = await run('openssl', ['verify', '-CAfile', await file('alpha-ca-csr.crt', issued.caPem), cert]);
      expect(verify).toMatchObject({ code: 0 });

      // with the key openssl made, and a username that names the same device
      const sub = await mosquittoSub(mosquittoTls(['-u', 'alpha:d1', '-P', pw, '-t', 'csr/news', '-C', '1']));
      const pub = await run(
        'mosquitto_pub',
        mosquittoTls(['--cert', cert, '--key', join(dir, 'csr-d2.key'), '-u', 'alpha:d2', '-t', 'csr/news', '-m', 'from csr']),
      );
      expect(pub).toMatchObject({ code: 0 });
      expect(payloadLines((await sub.done).stdout)).toEqual(['from csr']);

      // an RSA CSR works too (with mqtt.js)
      const rsa = await run('openssl', [
        'req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'rsa.key'), '-out', join(dir, 'rsa.csr'), '-subj', '/CN=d2',
      ]);
      expect(rsa.code).toBe(0);
      const rsaIssued = await issue('alpha', 'd2', { csr: await fs.readFile(join(dir, 'rsa.csr'), 'utf8') });
      const c = await mqtts({ ca: serverCaPem, cert: rsaIssued.certificatePem, key: await fs.readFile(join(dir, 'rsa.key'), 'utf8') });
      expect(c.client.connected).toBe(true);
    });

    it('validates the request: validityDays 1..825, a real CSR, no unknown fields; unknown devices are 404', async () => {
      const post = (body: unknown, device = 'd1') => app.api('POST', `/api/v1/tenants/alpha/devices/${device}/certificates`, body);
      for (const [body, field] of [
        [{ validityDays: 0 }, 'validityDays'],
        [{ validityDays: 826 }, 'validityDays'],
        [{ validityDays: '30' }, 'validityDays'],
        [{ validityDays: 1.5 }, 'validityDays'],
        [{ csr: 'not a csr' }, 'csr'],
        [{ csr: 42 }, 'csr'],
        [{ keyAlgorithm: 'rsa' }, 'keyAlgorithm'],
      ] as const) {
        const res = await post(body);
        expect(res.status).toBe(400);
        expect(res.headers.get('content-type')).toMatch(/problem\+json/);
        expect(res.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field })]));
      }
      // a CSR whose signature does not verify (tampered) is refused as well
      const { stdout } = await run('openssl', [
        'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'x.key'), '-subj', '/CN=x',
      ]);
      const lines = stdout.trim().split('\n');
      const mid = Math.floor(lines.length / 2);
      lines[mid] = lines[mid].slice(0, 10) + (lines[mid][10] === 'A' ? 'B' : 'A') + lines[mid].slice(11);
      const tampered = await post({ csr: lines.join('\n') + '\n' });
      expect(tampered.status).toBe(400);
      expect(tampered.body.errors[0].field).toBe('csr');

      expect((await post({}, 'nosuch')).status).toBe(404);
      expect((await app.api('POST', '/api/v1/tenants/nosuch/devices/d1/certificates', {})).status).toBe(404);
    });

    it('lists a device certificates with pagination and without private keys; revokes idempotently', async () => {
      await app.createDevice('alpha', 'lister', pw);
      const a = await issue('alpha', 'lister');
      // no body at all: a key pair is generated
      const noBody = await app.api<Issued>('POST', '/api/v1/tenants/alpha/devices/lister/certificates');
      expect(noBody.status).toBe(201);
      expect(noBody.body.privateKeyPem).toContain('PRIVATE KEY');
      const b = noBody.body;
      const page1 = await app.api('GET', '/api/v1/tenants/alpha/devices/lister/certificates?limit=1');
      expect(page1.status).toBe(200);
      expect(page1.body.items.map((c: Issued) => c.id)).toEqual([a.id]);
      expect(page1.body.nextCursor).toEqual(expect.any(String));
      const page2 = await app.api('GET', `/api/v1/tenants/alpha/devices/lister/certificates?limit=1&cursor=${page1.body.nextCursor}`);
      expect(page2.body).toMatchObject({ items: [{ id: b.id, serialNumber: b.serialNumber, status: 'active' }], nextCursor: null });
      expect(JSON.stringify([page1.body, page2.body])).not.toContain('PRIVATE KEY');

      const first = await revoke('alpha', 'lister', a.id);
      expect(first).toMatchObject({ id: a.id, status: 'revoked', revokedAt: expect.any(String) });
      expect(await revoke('alpha', 'lister', a.id)).toEqual(first);
      // another device's path, another tenant's path, an unknown id: all not found
      expect((await app.api('POST', `/api/v1/tenants/alpha/devices/d1/certificates/${b.id}/revoke`)).status).toBe(404);
      expect((await app.api('POST', `/api/v1/tenants/bravo/devices/d1/certificates/${b.id}/revoke`)).status).toBe(404);
      expect((await app.api('POST', '/api/v1/tenants/alpha/devices/lister/certificates/nosuch/revoke')).status).toBe(404);
      const all = await app.api('GET', '/api/v1/tenants/alpha/devices/lister/certificates');
      expect(all.body.items.map((c: Issued) => [c.id, c.status])).toEqual([
        [a.id, 'revoked'],
        [b.id, 'active'],
      ]);
    });
  });

  describe('mutual TLS at CONNECT', () => {
    it('identifies the device by its certificate, and its ACLs apply as for a password', async () => {
      await app.createTenant('gamma');
      await app.createDevice('gamma', 'probe', pw);
      await app.allow('gamma', { device: null, topic: 'sensors/${device}/#' });
      const issued = await issue('gamma', 'probe');
      const c = await mqtts(tlsOptions(issued));
      expect(await subackCodes(c, 'sensors/probe/#', 1)).toEqual([1]);
      expect(await subackCodes(c, 'sensors/other/#', 1)).toEqual([128]);
      await c.publish('sensors/probe/t', 'own', { qos: 1 });
      expect(await c.next()).toMatchObject({ topic: 'sensors/probe/t', payload: 'own' });
    });

    it('refuses a revoked certificate at once, even with a valid password', async () => {
      const issued = await issue('alpha', 'd1');
      const { cert, key } = await onDisk(issued);
      const args = mosquittoTls(['--cert', cert, '--key', key, '-u', 'alpha:d1', '-P', pw, '-t', 'rev/x', '-m', 'x']);
      expect(await run('mosquitto_pub', args)).toMatchObject({ code: 0 });
      await revoke('alpha', 'd1', issued.id);
      const after = await run('mosquitto_pub', args);
      expect(after.code).not.toBe(0);
      expect(after.stderr).toContain('not authorised');
      expect(await refusedOverTls(tlsOptions(issued, { username: 'alpha:d1', password: pw }))).toBe(5);
      // the password alone still works
      const byPassword = await mqtts({ ca: serverCaPem, username: 'alpha:d1', password: pw });
      expect(byPassword.client.connected).toBe(true);
    });

    it('refuses expired and not-yet-valid certificates of the right CA, even with a valid password', async () => {
      const tenant = await app.running.app.get(TenantsService).resolve({ kind: 'operator' }, 'alpha');
      const service = app.running.app.get(CertificatesService);
      const now = Date.now();
      const expired = await service.issue(tenant, 'd1', {}, { notBefore: new Date(now - 10 * DAY), notAfter: new Date(now - DAY) });
      const future = await service.issue(tenant, 'd1', {}, { notBefore: new Date(now + DAY), notAfter: new Date(now + 10 * DAY) });
      const control = await service.issue(tenant, 'd1', {}, { notBefore: new Date(now - DAY), notAfter: new Date(now + DAY) });
      for (const bad of [expired, future]) {
        expect(bad.status).toBe('active'); // stored as active: the dates alone refuse it
        expect(await refusedOverTls(tlsOptions(bad as Issued, { username: 'alpha:d1', password: pw }))).toBe(5);
      }
      const { cert, key } = await onDisk(expired as Issued);
      const cli = await run('mosquitto_pub', mosquittoTls(['--cert', cert, '--key', key, '-t', 'exp/x', '-m', 'x']));
      expect(cli.code).not.toBe(0);
      const ok = await mqtts(tlsOptions(control as Issued));
      expect(ok.client.connected).toBe(true);
    });

    it('refuses a certificate from a foreign CA that copies the tenant CA name, even with a valid password', async () => {
      const ossl = (args: string[]) => run('openssl', args);
      const p = (n: string) => join(dir, n);
      expect(
        (await ossl([
          'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('rogue-ca.key'), '-out', p('rogue-ca.crt'),
          '-days', '30', '-subj', '/CN=alpha device CA', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
        ])).code,
      ).toBe(0);
      expect(
        (await ossl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', p('rogue.key'), '-out', p('rogue.csr'), '-subj', '/CN=d1'])).code,
      ).toBe(0);
      await file('rogue.ext', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
      expect(
        (await ossl(['x509', '-req', '-in', p('rogue.csr'), '-CA', p('rogue-ca.crt'), '-CAkey', p('rogue-ca.key'), '-CAcreateserial', '-days', '30', '-out', p('rogue.crt'), '-extfile', p('rogue.ext')])).code,
      ).toBe(0);
      const alphaCa = await file('alpha-ca-rogue-check.crt', (await app.api<string>('GET', '/api/v1/tenants/alpha/ca')).body);
      // same issuer name as alpha's CA, yet not signed by it
      expect((await ossl(['verify', '-CAfile', alphaCa, p('rogue.crt')])).code).not.toBe(0);

      const cli = await run('mosquitto_pub', mosquittoTls(['--cert', p('rogue.crt'), '--key', p('rogue.key'), '-u', 'alpha:d1', '-P', pw, '-t', 'r/x', '-m', 'x']));
      expect(cli.code).not.toBe(0);
      expect(cli.stderr).toContain('not authorised');
      const rogue = { ca: serverCaPem, cert: await fs.readFile(p('rogue.crt'), 'utf8'), key: await fs.readFile(p('rogue.key'), 'utf8') };
      expect(await refusedOverTls({ ...rogue, username: 'alpha:d1', password: pw })).toBe(5);
      expect(await refusedOverTls(rogue)).toBe(5);
    });

    it("keeps a tenant's certificates inside that tenant: the username must name the certificate's device", async () => {
      const alphaD1 = await issue('alpha', 'd1');
      expect(await refusedOverTls(tlsOptions(alphaD1, { username: 'alpha:d2' }))).toBe(4);
      expect(await refusedOverTls(tlsOptions(alphaD1, { username: 'bravo:d1', password: pw }))).toBe(4);
      expect(await refusedOverTls(tlsOptions(alphaD1, { username: 'd1' }))).toBe(4);
      const { cert, key } = await onDisk(alphaD1);
      const cli = await run('mosquitto_pub', mosquittoTls(['--cert', cert, '--key', key, '-u', 'alpha:d2', '-t', 'u/x', '-m', 'x']));
      expect(cli.stderr).toContain('bad user name or password');

      // a bravo certificate for a device also called d1 lands in bravo, never in alpha
      const bravoD1 = await issue('bravo', 'd1');
      const alphaSub = await mqtts({ ca: serverCaPem, username: 'alpha:d2', password: pw });
      const bravoSub = await mqtts({ ca: serverCaPem, username: 'bravo:d2', password: pw });
      await alphaSub.subscribe('iso/#');
      await bravoSub.subscribe('iso/#');
      const bravoByCert = await mqtts(tlsOptions(bravoD1, { username: 'bravo:d1' }));
      await bravoByCert.publish('iso/cert', 'from-bravo');
      expect(await bravoSub.next()).toMatchObject({ topic: 'iso/cert', payload: 'from-bravo' });
      const alphaPub = await mqtts(tlsOptions(alphaD1));
      expect(await alphaSub.drain(alphaPub, 'iso/marker')).toEqual([]);
    });

    it('disconnects the live sessions that used a certificate when it is revoked, and only those', async () => {
      const first = await issue('alpha', 'd1');
      const second = await issue('alpha', 'd1');
      const byFirst = await mqtts(tlsOptions(first, { clientId: 'rev-first' }));
      const bySecond = await mqtts(tlsOptions(second, { clientId: 'rev-second' }));
      const byPassword = await mqtts({ ca: serverCaPem, username: 'alpha:d1', password: pw, clientId: 'rev-password' });
      await revoke('alpha', 'd1', first.id);
      await closedByServer(byFirst);
      // the others stay: a round trip through each
      await bySecond.subscribe('still/here');
      await byPassword.publish('still/here', 'yes');
      expect(await bySecond.next()).toMatchObject({ payload: 'yes' });
      expect(byPassword.client.connected).toBe(true);
      expect(await refusedOverTls(tlsOptions(first))).toBe(5);
    });

    it('revokes the certificates of a deleted device: a device re-created with its name cannot use them', async () => {
      await app.createDevice('alpha', 'temp', pw);
      const issued = await issue('alpha', 'temp');
      const live = await mqtts(tlsOptions(issued));
      expect((await app.api('DELETE', '/api/v1/tenants/alpha/devices/temp')).status).toBe(204);
      await closedByServer(live);
      await app.createDevice('alpha', 'temp', pw);
      expect(await refusedOverTls(tlsOptions(issued))).toBe(5);
      expect((await app.api('GET', '/api/v1/tenants/alpha/devices/temp/certificates')).body.items).toEqual([]);
      // the new device gets its own
      const fresh = await issue('alpha', 'temp');
      expect((await mqtts(tlsOptions(fresh))).client.connected).toBe(true);
    });

    it("learns at CONNECT the CA of a tenant whose creation this node missed (cluster bus down)", async () => {
      await app.createTenant('late');
      await app.createDevice('late', 'dev', pw);
      const issued = await issue('late', 'dev');
      const tenant = await app.running.app.get(TenantsService).resolve({ kind: 'operator' }, 'late');
      app.running.app.get(ClientCertificateAuth).deleteTenantCa(tenant.id);
      const c = await mqtts(tlsOptions(issued, { username: 'late:dev' }));
      expect(c.client.connected).toBe(true);
    });

    it('refuses the certificate of a disabled device', async () => {
      await app.createDevice('alpha', 'sleepy', pw);
      const issued = await issue('alpha', 'sleepy');
      const live = await mqtts(tlsOptions(issued));
      expect((await app.api('PATCH', '/api/v1/tenants/alpha/devices/sleepy', { enabled: false })).status).toBe(200);
      await closedByServer(live);
      expect(await refusedOverTls(tlsOptions(issued))).toBe(5);
    });

    it('with requireClientCertificates, refuses passwords and accepts certificates', async () => {
      await app.createTenant('strict');
      await app.createDevice('strict', 'dev', pw);
      await app.allow('strict');
      const issued = await issue('strict', 'dev');
      const byPassword = await mqtts({ ca: serverCaPem, username: 'strict:dev', password: pw, clientId: 'strict-pw' });
      const byCert = await mqtts(tlsOptions(issued, { username: 'strict:dev', clientId: 'strict-cert' }));
      expect((await app.api('PATCH', '/api/v1/tenants/strict', { requireClientCertificates: true })).status).toBe(200);
      // the password session goes, the certificate session stays
      await closedByServer(byPassword);
      await byCert.subscribe('strict/t');
      await byCert.publish('strict/t', 'cert-only');
      expect(await byCert.next()).toMatchObject({ payload: 'cert-only' });
      expect(await refusedOverTls({ ca: serverCaPem, username: 'strict:dev', password: pw })).toBe(5);
      const { cert, key } = await onDisk(issued);
      expect(await run('mosquitto_pub', mosquittoTls(['--cert', cert, '--key', key, '-t', 'strict/t', '-m', 'x']))).toMatchObject({ code: 0 });
    });
  });
});
