import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { TenantCaIndex, verifyClientCertificate, type CaLookup, type ClientCertificateVerdict } from './client-certificate-verifier';
import { Scratch } from './openssl.test-helper';
import {
  createCertificateAuthority,
  createServerCertificate,
  GeneratedCertificate,
  issueClientCertificate,
  IssuedCertificate,
  loadCa,
  signingAlgorithm,
} from './pki';

const DAY = 86_400_000;

const der = (pem: string): Buffer => Buffer.from(new X509Certificate(pem).raw);

let caA: GeneratedCertificate; // tenant a, EC
let caB: GeneratedCertificate; // tenant b, RSA
let rogue: GeneratedCertificate; // same DN as tenant a, different key
let index: TenantCaIndex;
let certA: IssuedCertificate;

beforeAll(async () => {
  [caA, caB, rogue] = await Promise.all([
    createCertificateAuthority({ commonName: 'tenant-a CA', keyAlgorithm: 'ec-p256', validityDays: 3650 }),
    createCertificateAuthority({ commonName: 'tenant-b CA', keyAlgorithm: 'rsa-2048', validityDays: 3650 }),
    createCertificateAuthority({ commonName: 'tenant-a CA', keyAlgorithm: 'ec-p256', validityDays: 3650 }),
  ]);
  index = new TenantCaIndex();
  index.set('a', caA.certificatePem);
  index.set('b', new X509Certificate(caB.certificatePem));
  certA = await issueClientCertificate({ ca: caA, commonName: 'dev-1', validityDays: 30 });
});

/**
 * Signs an arbitrary leaf with a CA's key, bypassing issueClientCertificate's input checks,
 * to present the verifier with certificates our issuer would never make.
 */
async function craft(
  ca: GeneratedCertificate,
  subject: x509.JsonName,
  extensions: x509.Extension[] = [new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth])],
): Promise<Buffer> {
  const loaded = await loadCa(ca);
  const keys = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: loaded.cert.subjectName,
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + DAY),
    publicKey: keys.publicKey,
    signingKey: loaded.signingKey,
    signingAlgorithm: signingAlgorithm(loaded.signingKey),
    extensions,
  });
  return Buffer.from(cert.rawData);
}

describe('verifyClientCertificate', () => {
  it('accepts a certificate of tenant a and reports what the caller needs', () => {
    const verdict = verifyClientCertificate(der(certA.certificatePem), index.lookup);
    expect(verdict).toEqual({
      ok: true,
      tenantKey: 'a',
      commonName: 'dev-1',
      serialNumber: certA.serialNumber,
      fingerprintSha256: certA.fingerprintSha256,
      notAfter: certA.notAfter,
    });
  });

  it('accepts a CSR-based RSA certificate from the RSA CA of tenant b', async () => {
    const scratch = await Scratch.create();
    try {
      const { csrPem } = await scratch.csr('rsa', '/CN=ignored');
      const issued = await issueClientCertificate({ ca: caB, commonName: 'gw.01', csrPem, validityDays: 5 });
      expect(verifyClientCertificate(der(issued.certificatePem), index.lookup)).toMatchObject({ ok: true, tenantKey: 'b', commonName: 'gw.01' });
    } finally {
      await scratch.remove();
    }
  });

  it('accepts Uint8Array input as well as Buffer', () => {
    expect(verifyClientCertificate(new Uint8Array(der(certA.certificatePem)), index.lookup).ok).toBe(true);
  });

  it('refuses a certificate from a rogue CA that copies tenant a\'s DN', async () => {
    const forged = await issueClientCertificate({ ca: rogue, commonName: 'dev-1', validityDays: 30 });
    expect(new X509Certificate(forged.certificatePem).issuer).toBe(new X509Certificate(caA.certificatePem).subject);
    expect(verifyClientCertificate(der(forged.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'bad-signature' });
  });

  it('lets the signature pick the tenant when two tenants share a DN', async () => {
    const shared = new TenantCaIndex<number>();
    shared.set(1, rogue.certificatePem);
    shared.set(2, caA.certificatePem);
    const fromRogue = await issueClientCertificate({ ca: rogue, commonName: 'x', validityDays: 1 });
    expect(verifyClientCertificate(der(certA.certificatePem), shared.lookup)).toMatchObject({ ok: true, tenantKey: 2 });
    expect(verifyClientCertificate(der(fromRogue.certificatePem), shared.lookup)).toMatchObject({ ok: true, tenantKey: 1 });
    // and once tenant 2 is gone, its certificates stop working at once
    shared.delete(2);
    expect(verifyClientCertificate(der(certA.certificatePem), shared.lookup)).toEqual({ ok: false, reason: 'bad-signature' });
    shared.delete(1);
    expect(shared.size).toBe(0);
    expect(verifyClientCertificate(der(certA.certificatePem), shared.lookup)).toEqual({ ok: false, reason: 'unknown-issuer' });
  });

  it('refuses an unknown issuer', async () => {
    const other = await createCertificateAuthority({ commonName: 'someone else', keyAlgorithm: 'ec-p256', validityDays: 10 });
    const cert = await issueClientCertificate({ ca: other, commonName: 'dev-1', validityDays: 1 });
    expect(verifyClientCertificate(der(cert.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'unknown-issuer' });
  });

  it.each([
    ['undefined', undefined],
    ['null', null],
    ['an empty buffer', Buffer.alloc(0)],
  ])('no certificate: %s', (_label, raw) => {
    expect(verifyClientCertificate(raw, index.lookup)).toEqual({ ok: false, reason: 'no-certificate' });
  });

  it('refuses bytes that are not a certificate', () => {
    expect(verifyClientCertificate(Buffer.from('not a certificate'), index.lookup)).toEqual({ ok: false, reason: 'malformed' });
  });

  it('refuses an expired certificate', async () => {
    const expired = await issueClientCertificate({
      ca: caA,
      commonName: 'dev-1',
      validityDays: 1,
      validityOverride: { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) },
    });
    expect(verifyClientCertificate(der(expired.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses a certificate that is not valid yet', async () => {
    const future = await issueClientCertificate({
      ca: caA,
      commonName: 'dev-1',
      validityDays: 1,
      validityOverride: { notBefore: new Date(Date.now() + DAY), notAfter: new Date(Date.now() + 10 * DAY) },
    });
    expect(verifyClientCertificate(der(future.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'not-yet-valid' });
  });

  it('uses the given clock, to the second', () => {
    const raw = der(certA.certificatePem);
    expect(verifyClientCertificate(raw, index.lookup, certA.notAfter.getTime()).ok).toBe(true);
    expect(verifyClientCertificate(raw, index.lookup, certA.notAfter.getTime() + 1000)).toEqual({ ok: false, reason: 'expired' });
    expect(verifyClientCertificate(raw, index.lookup, certA.notBefore.getTime())).toMatchObject({ ok: true });
    expect(verifyClientCertificate(raw, index.lookup, certA.notBefore.getTime() - 1000)).toEqual({ ok: false, reason: 'not-yet-valid' });
  });

  it('refuses a certificate whose CA has expired', async () => {
    const shortCa = await createCertificateAuthority({ commonName: 'short', keyAlgorithm: 'ec-p256', validityDays: 2 });
    const leaf = await issueClientCertificate({ ca: shortCa, commonName: 'd', validityDays: 1 });
    const lookup: CaLookup = () => [{ tenantKey: 's', caX509: new X509Certificate(shortCa.certificatePem) }];
    expect(verifyClientCertificate(der(leaf.certificatePem), lookup).ok).toBe(true);
    // the leaf itself expires with the CA (clamped) - check the CA alone by faking a long leaf
    const longLeaf = await craft(shortCa, [{ CN: ['d'] }]);
    expect(verifyClientCertificate(longLeaf, lookup, Date.now() + 3 * DAY)).toEqual({ ok: false, reason: 'expired' });
  });

  it('refuses the broker server certificate and the CA certificate itself', async () => {
    const server = await createServerCertificate({ ca: caA, hostnames: ['localhost'], ips: ['127.0.0.1'], validityDays: 1 });
    expect(verifyClientCertificate(der(server.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'not-a-client-certificate' });
    expect(verifyClientCertificate(der(caA.certificatePem), index.lookup)).toEqual({ ok: false, reason: 'not-a-client-certificate' });
  });

  it('refuses a certificate without EKU clientAuth', async () => {
    const noEku = await craft(caA, [{ CN: ['dev-1'] }], []);
    expect(verifyClientCertificate(noEku, index.lookup)).toEqual({ ok: false, reason: 'not-a-client-certificate' });
  });

  it.each([
    ['a NUL in the CN', [{ CN: ['dev\u0000-1'] }]],
    ['a space', [{ CN: ['dev 1'] }]],
    ['an RFC 2253 special', [{ CN: ['dev,O=x'] }]],
    ['a newline pretending to be another RDN', [{ CN: ['x\nCN=dev-1'] }]],
    ['non-ASCII', [{ CN: ['dév'] }]],
    ['65 characters', [{ CN: ['d'.repeat(65)] }]],
    ['two CNs', [{ CN: ['dev-1'] }, { CN: ['dev-2'] }]],
    ['a multi-valued RDN', [{ CN: ['dev-1'], O: ['x'] }]],
    ['no CN', [{ O: ['dev-1'] }]],
  ] as [string, x509.JsonName][])('refuses %s', async (_label, subject) => {
    const raw = await craft(caA, subject);
    expect(verifyClientCertificate(raw, index.lookup)).toEqual({ ok: false, reason: 'bad-common-name' });
  });

  it('accepts extra subject attributes as long as there is exactly one valid CN', async () => {
    const raw = await craft(caA, [{ O: ['tenant-a'] }, { CN: ['dev-9'] }]);
    expect(verifyClientCertificate(raw, index.lookup)).toMatchObject({ ok: true, commonName: 'dev-9' });
  });

  it('is cheap enough to run on every connect', () => {
    const raw = der(certA.certificatePem);
    const rounds = 300;
    const start = process.hrtime.bigint();
    for (let i = 0; i < rounds; i++) verifyClientCertificate(raw, index.lookup);
    const perCallMs = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
    expect(perCallMs).toBeLessThan(2); // ~0.1 ms seen here (EC P-256)
  });
});

describe('TenantCaIndex', () => {
  it('replaces a tenant CA on set and forgets it on delete', () => {
    const idx = new TenantCaIndex();
    idx.set('a', caA.certificatePem);
    idx.set('a', caB.certificatePem);
    expect(idx.size).toBe(1);
    expect(idx.lookup(new X509Certificate(caA.certificatePem).subject)).toBeUndefined();
    expect(idx.lookup(new X509Certificate(caB.certificatePem).subject)).toHaveLength(1);
    expect(idx.delete('a')).toBe(true);
    expect(idx.delete('a')).toBe(false);
    expect(idx.lookup(new X509Certificate(caB.certificatePem).subject)).toBeUndefined();
  });
});

describe('over a real TLS connection', () => {
  let serverCa: GeneratedCertificate;
  let server: tls.Server;
  let port: number;
  const sockets = new Set<tls.TLSSocket>();

  beforeAll(async () => {
    serverCa = await createCertificateAuthority({ commonName: 'Broker Server CA', keyAlgorithm: 'ec-p256', validityDays: 30 });
    const serverCert = await createServerCertificate({ ca: serverCa, hostnames: ['localhost'], ips: ['127.0.0.1'], validityDays: 30 });
    server = tls.createServer(
      { key: serverCert.privateKeyPem, cert: serverCert.certificatePem, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' },
      (socket) => {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
        // what the broker does in authenticate(): the raw peer certificate through the verifier
        const peer = socket.getPeerCertificate(true);
        const verdict = verifyClientCertificate(peer?.raw, index.lookup);
        socket.end(JSON.stringify({ verdict, protocol: socket.getProtocol() }));
      },
    );
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  async function connect(
    options: Partial<tls.ConnectionOptions>,
  ): Promise<{ authorized: boolean; verdict: ClientCertificateVerdict; protocol: string }> {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: serverCa.certificatePem, ...options });
    try {
      await once(socket, 'secureConnect');
      const authorized = socket.authorized; // server verified by the client with the default checkServerIdentity
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      await once(socket, 'end');
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      if (body.verdict.ok) body.verdict.notAfter = new Date(body.verdict.notAfter);
      return { authorized, ...body };
    } finally {
      socket.destroy();
    }
  }

  it('the client verifies the broker as localhost and the broker identifies the device', async () => {
    const r = await connect({ cert: certA.certificatePem, key: certA.privateKeyPem });
    expect(r.authorized).toBe(true);
    expect(r.verdict).toEqual({
      ok: true,
      tenantKey: 'a',
      commonName: 'dev-1',
      serialNumber: certA.serialNumber,
      fingerprintSha256: certA.fingerprintSha256,
      notAfter: certA.notAfter,
    });
  });

  it('works with TLS 1.2 too, and an RSA client key from an openssl CSR', async () => {
    const scratch = await Scratch.create();
    try {
      const { csrPem, keyPem } = await scratch.csr('rsa', '/CN=whatever');
      const issued = await issueClientCertificate({ ca: caB, commonName: 'rsa-dev', csrPem, validityDays: 1 });
      const r = await connect({ cert: issued.certificatePem, key: keyPem, maxVersion: 'TLSv1.2' });
      expect(r.protocol).toBe('TLSv1.2');
      expect(r.verdict).toMatchObject({ ok: true, tenantKey: 'b', commonName: 'rsa-dev', serialNumber: issued.serialNumber });
    } finally {
      await scratch.remove();
    }
  });

  it('the broker refuses a rogue CA\'s certificate and notices a missing one', async () => {
    const forged = await issueClientCertificate({ ca: rogue, commonName: 'dev-1', validityDays: 1 });
    expect((await connect({ cert: forged.certificatePem, key: forged.privateKeyPem })).verdict).toEqual({ ok: false, reason: 'bad-signature' });
    expect((await connect({})).verdict).toEqual({ ok: false, reason: 'no-certificate' });
  });

  it('a client that does not trust the broker CA refuses the broker', async () => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: caA.certificatePem });
    socket.on('error', () => undefined);
    const [err] = (await once(socket, 'error').catch((e: unknown) => [e])) as [Error & { code?: string }];
    socket.destroy();
    expect(err.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
  });
});
