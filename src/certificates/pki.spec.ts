import * as x509 from '@peculiar/x509';
import { createPrivateKey, createPublicKey, X509Certificate } from 'node:crypto';
import { Scratch } from './openssl.test-helper';
import {
  CertificateAuthorityError,
  certificateInfo,
  CLOCK_SKEW_ALLOWANCE_MS,
  createCertificateAuthority,
  createServerCertificate,
  CsrError,
  GeneratedCertificate,
  issueClientCertificate,
  normaliseSerialNumber,
  PkiInputError,
} from './pki';

const DAY = 86_400_000;
const SERIAL_RE = /^[1-9a-f][0-9a-f]{0,31}$/;

let scratch: Scratch;
let caEc: GeneratedCertificate; // tenant A
let caRsa: GeneratedCertificate; // tenant B
let serverCa: GeneratedCertificate;

beforeAll(async () => {
  scratch = await Scratch.create();
  [caEc, caRsa, serverCa] = await Promise.all([
    createCertificateAuthority({ commonName: 'tenant-a Device CA', keyAlgorithm: 'ec-p256', validityDays: 3650 }),
    createCertificateAuthority({ commonName: 'tenant-b Device CA', keyAlgorithm: 'rsa-2048', validityDays: 3650 }),
    createCertificateAuthority({ commonName: 'Broker Server CA', keyAlgorithm: 'ec-p256', validityDays: 3650 }),
  ]);
});

afterAll(async () => {
  await scratch.remove();
});

function ext<T extends x509.Extension>(pem: string, type: new (raw: ArrayBuffer) => T): T {
  const found = new x509.X509Certificate(pem).getExtension(type);
  if (!found) throw new Error(`extension ${type.name} missing`);
  return found;
}

/** the same normalisation applied to what openssl prints */
async function opensslFacts(certPem: string): Promise<{ serial: string; fingerprint: string; subject: string; text: string }> {
  const file = await scratch.write(`facts-${Math.random().toString(36).slice(2)}.pem`, certPem);
  const r = await scratch.openssl(['x509', '-in', file, '-noout', '-serial', '-fingerprint', '-sha256', '-subject', '-nameopt', 'RFC2253', '-text']);
  expect(r.code).toBe(0);
  return {
    serial: /serial=([0-9A-F]+)/.exec(r.stdout)![1],
    fingerprint: /Fingerprint=([0-9A-F:]+)/i.exec(r.stdout)![1],
    subject: /subject=(.*)/.exec(r.stdout)![1].trim(),
    text: r.stdout,
  };
}

describe('createCertificateAuthority', () => {
  it.each([
    ['ec-p256', () => caEc, 'ec'],
    ['rsa-2048', () => caRsa, 'rsa'],
  ])('%s: a self-signed CA, pathLen 0, keyCertSign|cRLSign, SKI, PKCS#8 key', async (_alg, get, keyType) => {
    const ca = get();
    const basic = ext(ca.certificatePem, x509.BasicConstraintsExtension);
    expect(basic).toMatchObject({ ca: true, pathLength: 0, critical: true });
    const usage = ext(ca.certificatePem, x509.KeyUsagesExtension);
    expect(usage.critical).toBe(true);
    expect(usage.usages).toBe(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign);
    expect(ext(ca.certificatePem, x509.SubjectKeyIdentifierExtension).keyId).toMatch(/^[0-9a-f]{40}$/);

    expect(ca.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(ca.privateKeyPem);
    expect(key.asymmetricKeyType).toBe(keyType);
    expect(new X509Certificate(ca.certificatePem).checkPrivateKey(key)).toBe(true);
    expect(ca.serialNumber).toMatch(SERIAL_RE);
    expect(ca.notAfter.getTime() - Date.now()).toBeGreaterThan(3649 * DAY);

    const verify = await scratch.verify(ca.certificatePem, ca.certificatePem);
    expect(verify.stdout).toContain(': OK');
    const facts = await opensslFacts(ca.certificatePem);
    expect(facts.text).toMatch(/CA:TRUE, pathlen:0/);
    expect(facts.subject).toBe(ca === caEc ? 'CN=tenant-a Device CA' : 'CN=tenant-b Device CA');
  });

  it('refuses an empty or control-character common name', async () => {
    await expect(createCertificateAuthority({ commonName: '', keyAlgorithm: 'ec-p256', validityDays: 1 })).rejects.toMatchObject({
      field: 'commonName',
    });
    await expect(createCertificateAuthority({ commonName: 'a\nb', keyAlgorithm: 'ec-p256', validityDays: 1 })).rejects.toBeInstanceOf(
      PkiInputError,
    );
  });
});

describe('createServerCertificate', () => {
  let server: GeneratedCertificate;
  beforeAll(async () => {
    server = await createServerCertificate({
      ca: serverCa,
      hostnames: ['localhost', 'MQTT.example.com', 'localhost'],
      ips: ['127.0.0.1', '::1'],
      validityDays: 825,
    });
  });

  it('carries every hostname and IP in its SAN, EKU serverAuth, and verifies with openssl as an SSL server', async () => {
    const cert = new X509Certificate(server.certificatePem);
    expect(cert.subject).toBe('CN=localhost');
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkHost('mqtt.example.com')).toBe('mqtt.example.com');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('::1')).toBe('::1');
    expect(cert.checkHost('evil.example.com')).toBeUndefined();
    expect(cert.subjectAltName).toBe('DNS:localhost, DNS:mqtt.example.com, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
    expect(cert.checkPrivateKey(createPrivateKey(server.privateKeyPem))).toBe(true);

    const ok = await scratch.verify(serverCa.certificatePem, server.certificatePem, ['-purpose', 'sslserver', '-verify_hostname', 'localhost']);
    expect(ok.stdout).toContain(': OK');
    // not usable as a client certificate
    const asClient = await scratch.verify(serverCa.certificatePem, server.certificatePem, ['-purpose', 'sslclient']);
    expect(asClient.code).not.toBe(0);
  });

  it('names its issuer with the CA subject bytes and its AKI is the CA SKI', () => {
    const leaf = new x509.X509Certificate(server.certificatePem);
    const ca = new x509.X509Certificate(serverCa.certificatePem);
    expect(Buffer.from(leaf.issuerName.toArrayBuffer())).toEqual(Buffer.from(ca.subjectName.toArrayBuffer()));
    expect(leaf.getExtension(x509.AuthorityKeyIdentifierExtension)!.keyId).toBe(ca.getExtension(x509.SubjectKeyIdentifierExtension)!.keyId);
    expect(leaf.getExtension(x509.BasicConstraintsExtension)).toMatchObject({ ca: false, critical: true });
    expect(leaf.getExtension(x509.KeyUsagesExtension)!.usages).toBe(x509.KeyUsageFlags.digitalSignature);
  });

  it('can be RSA (keyEncipherment added) and signed by an RSA CA', async () => {
    const rsa = await createServerCertificate({ ca: caRsa, hostnames: ['localhost'], ips: [], validityDays: 30, keyAlgorithm: 'rsa-2048' });
    expect(ext(rsa.certificatePem, x509.KeyUsagesExtension).usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    expect((await scratch.verify(caRsa.certificatePem, rsa.certificatePem, ['-purpose', 'sslserver'])).stdout).toContain(': OK');
  });

  it.each([
    [{ hostnames: ['bad host'], ips: [] }, 'hostnames'],
    [{ hostnames: ['-leading.example'], ips: [] }, 'hostnames'],
    [{ hostnames: [], ips: ['127.0.0.256'] }, 'ips'],
    [{ hostnames: [], ips: [] }, 'hostnames'],
  ])('refuses %j (field %s)', async (names, field) => {
    await expect(createServerCertificate({ ca: serverCa, validityDays: 1, ...names })).rejects.toMatchObject({ name: 'PkiInputError', field });
  });
});

describe('issueClientCertificate with a generated key', () => {
  it('issues CN=<device>, EKU clientAuth, digitalSignature, and returns the PKCS#8 key once', async () => {
    const before = Date.now();
    const issued = await issueClientCertificate({ ca: caEc, commonName: 'sensor-01.kitchen_A', validityDays: 365 });
    const cert = new X509Certificate(issued.certificatePem);
    expect(cert.subject).toBe('CN=sensor-01.kitchen_A');
    expect(cert.ca).toBe(false);
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']);
    expect(ext(issued.certificatePem, x509.KeyUsagesExtension)).toMatchObject({ usages: x509.KeyUsageFlags.digitalSignature, critical: true });
    expect(ext(issued.certificatePem, x509.AuthorityKeyIdentifierExtension).keyId).toBe(
      ext(caEc.certificatePem, x509.SubjectKeyIdentifierExtension).keyId,
    );

    expect(issued.privateKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    const key = createPrivateKey(issued.privateKeyPem!);
    expect(key.asymmetricKeyType).toBe('ec');
    expect(key.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.checkPrivateKey(key)).toBe(true);

    // the reported facts are the certificate's, in our normalised formats, and agree with openssl
    expect(issued.serialNumber).toMatch(SERIAL_RE);
    expect(issued.fingerprintSha256).toMatch(/^[0-9a-f]{64}$/);
    const facts = await opensslFacts(issued.certificatePem);
    expect(normaliseSerialNumber(facts.serial)).toBe(issued.serialNumber);
    expect(facts.fingerprint.replace(/:/g, '').toLowerCase()).toBe(issued.fingerprintSha256);
    expect(issued.notBefore).toEqual(new Date(cert.validFrom));
    expect(issued.notAfter).toEqual(new Date(cert.validTo));
    expect(issued.notBefore.getTime()).toBeLessThanOrEqual(before - CLOCK_SKEW_ALLOWANCE_MS + 1000);
    expect(Math.abs(issued.notAfter.getTime() - (before + 365 * DAY))).toBeLessThan(5000);

    const ok = await scratch.verify(caEc.certificatePem, issued.certificatePem, ['-purpose', 'sslclient']);
    expect(ok.stdout).toContain(': OK');
    // and the other tenant's CA does not vouch for it
    const foreign = await scratch.verify(caRsa.certificatePem, issued.certificatePem);
    expect(foreign.code).not.toBe(0);
  });

  it('uses 16 random bytes for serials (no collisions, no leading zeros)', async () => {
    const serials = await Promise.all(
      Array.from({ length: 40 }, async () => (await issueClientCertificate({ ca: caEc, commonName: 'd', validityDays: 1 })).serialNumber),
    );
    expect(new Set(serials).size).toBe(40);
    for (const s of serials) expect(s).toMatch(SERIAL_RE);
    expect(Math.max(...serials.map((s) => s.length))).toBe(32);
  });

  it('can generate an RSA key (keyEncipherment added) from an RSA CA', async () => {
    const issued = await issueClientCertificate({ ca: caRsa, commonName: 'rsa-dev', validityDays: 10, keyAlgorithm: 'rsa-2048' });
    expect(createPrivateKey(issued.privateKeyPem!).asymmetricKeyType).toBe('rsa');
    expect(ext(issued.certificatePem, x509.KeyUsagesExtension).usages).toBe(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
    );
    expect((await scratch.verify(caRsa.certificatePem, issued.certificatePem, ['-purpose', 'sslclient'])).stdout).toContain(': OK');
  });

  it('never outlives its CA', async () => {
    const shortCa = await createCertificateAuthority({ commonName: 'short CA', keyAlgorithm: 'ec-p256', validityDays: 2 });
    const issued = await issueClientCertificate({ ca: shortCa, commonName: 'dev', validityDays: 365 });
    expect(issued.notAfter).toEqual(shortCa.notAfter);
  });

  it.each([
    ['dev 1'],
    ['dev\u00001'],
    ['a/b'],
    ['x'.repeat(65)],
    [''],
    ['dév'],
  ])('refuses the common name %j', async (commonName) => {
    await expect(issueClientCertificate({ ca: caEc, commonName, validityDays: 1 })).rejects.toMatchObject({
      name: 'PkiInputError',
      field: 'commonName',
    });
  });

  it.each([[0], [1.5], [-3], [Number.NaN], [100_000]])('refuses validityDays %p', async (validityDays) => {
    await expect(issueClientCertificate({ ca: caEc, commonName: 'dev', validityDays })).rejects.toMatchObject({ field: 'validityDays' });
  });
});

describe('issueClientCertificate from a CSR made by openssl req', () => {
  it.each([
    ['EC P-256', 'ec' as const, () => caEc, x509.KeyUsageFlags.digitalSignature],
    ['RSA 2048', 'rsa' as const, () => caEc, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment],
    ['RSA 2048, RSA CA', 'rsa' as const, () => caRsa, x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment],
    ['EC P-256, RSA CA', 'ec' as const, () => caRsa, x509.KeyUsageFlags.digitalSignature],
  ])('%s: certifies the CSR key under OUR subject, and openssl verifies it', async (_label, kind, getCa, usages) => {
    const ca = getCa();
    const { csrPem, keyPem } = await scratch.csr(kind, '/CN=whatever/O=Evil Corp', ['-addext', 'basicConstraints=critical,CA:TRUE']);
    const issued = await issueClientCertificate({ ca, commonName: 'device-7', csrPem, validityDays: 30 });
    expect(issued.privateKeyPem).toBeUndefined();

    const cert = new X509Certificate(issued.certificatePem);
    expect(cert.subject).toBe('CN=device-7'); // not the CSR's subject
    expect(cert.ca).toBe(false); // the CSR's requested extensions are ignored
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(cert.publicKey.export({ type: 'spki', format: 'der' })).toEqual(
      createPublicKey(keyPem).export({ type: 'spki', format: 'der' }),
    );
    expect(ext(issued.certificatePem, x509.KeyUsagesExtension).usages).toBe(usages);

    const ok = await scratch.verify(ca.certificatePem, issued.certificatePem, ['-purpose', 'sslclient']);
    expect(ok.stdout).toContain(': OK');
    expect((await opensslFacts(issued.certificatePem)).subject).toBe('CN=device-7');
  });

  describe('refuses bad requests with CsrError (field csr)', () => {
    let goodCsr: string;
    beforeAll(async () => {
      goodCsr = (await scratch.csr('ec', '/CN=good')).csrPem;
    });

    const expectCsrError = async (csrPem: string, code: string) => {
      const promise = issueClientCertificate({ ca: caEc, commonName: 'dev', csrPem, validityDays: 1 });
      await expect(promise).rejects.toBeInstanceOf(CsrError);
      await expect(promise).rejects.toMatchObject({ field: 'csr', code });
      await expect(promise).rejects.toBeInstanceOf(PkiInputError);
    };

    it('not PEM at all', () => expectCsrError('hello', 'malformed'));
    it('empty string', () => expectCsrError('', 'malformed'));
    it('a certificate instead of a CSR', () => expectCsrError(caEc.certificatePem, 'malformed'));
    it('two CSRs', () => expectCsrError(goodCsr + goodCsr, 'malformed'));
    it('base64 that is not DER', () =>
      expectCsrError('-----BEGIN CERTIFICATE REQUEST-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE REQUEST-----\n', 'malformed'));
    it('non-base64 body', () =>
      expectCsrError('-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n', 'malformed'));
    it('too large', () => expectCsrError(goodCsr + ' '.repeat(70_000), 'malformed'));

    it('a CSR whose content was altered after signing', async () => {
      const der = Buffer.from(goodCsr.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
      const at = der.indexOf(Buffer.from('good'));
      expect(at).toBeGreaterThan(0);
      der.write('evil', at); // same length, so the DER stays well-formed
      await expectCsrError(x509.PemConverter.encode(der, 'CERTIFICATE REQUEST'), 'bad-signature');
    });

    it('an RSA 1024 key', async () => {
      await expectCsrError((await scratch.csr('rsa1024', '/CN=weak')).csrPem, 'unsupported-key');
    });

    it('an Ed25519 key', async () => {
      await expectCsrError((await scratch.csr('ed25519', '/CN=ed')).csrPem, 'unsupported-key');
    });
  });

  it('accepts the legacy NEW CERTIFICATE REQUEST label', async () => {
    const { csrPem } = await scratch.csr('ec', '/CN=legacy');
    const legacy = csrPem.replace(/CERTIFICATE REQUEST/g, 'NEW CERTIFICATE REQUEST');
    const issued = await issueClientCertificate({ ca: caEc, commonName: 'legacy', csrPem: legacy, validityDays: 1 });
    expect(certificateInfo(issued.certificatePem).subject).toBe('CN=legacy');
  });
});

describe('CA problems are server-side errors', () => {
  it('refuses a CA whose key does not match its certificate', async () => {
    await expect(
      issueClientCertificate({ ca: { certificatePem: caEc.certificatePem, privateKeyPem: serverCa.privateKeyPem }, commonName: 'd', validityDays: 1 }),
    ).rejects.toBeInstanceOf(CertificateAuthorityError);
  });

  it('refuses to sign with an expired CA', async () => {
    const expired = await createCertificateAuthority({
      commonName: 'old CA',
      keyAlgorithm: 'ec-p256',
      validityDays: 1,
      validityOverride: { notBefore: new Date(Date.now() - 10 * DAY), notAfter: new Date(Date.now() - DAY) },
    });
    await expect(issueClientCertificate({ ca: expired, commonName: 'd', validityDays: 1 })).rejects.toBeInstanceOf(CertificateAuthorityError);
  });

  it('refuses a leaf certificate as CA, and garbage', async () => {
    const leaf = await issueClientCertificate({ ca: caEc, commonName: 'd', validityDays: 1 });
    await expect(
      issueClientCertificate({ ca: { certificatePem: leaf.certificatePem, privateKeyPem: leaf.privateKeyPem! }, commonName: 'd', validityDays: 1 }),
    ).rejects.toBeInstanceOf(CertificateAuthorityError);
    await expect(
      issueClientCertificate({ ca: { certificatePem: 'x', privateKeyPem: 'y' }, commonName: 'd', validityDays: 1 }),
    ).rejects.toBeInstanceOf(CertificateAuthorityError);
  });
});

describe('normaliseSerialNumber', () => {
  it.each([
    ['00AB:CD', 'abcd'],
    ['0x0FF', 'ff'],
    ['0ABC', 'abc'],
    ['abc', 'abc'],
    ['0000', '0'],
  ])('%s -> %s', (input, expected) => {
    expect(normaliseSerialNumber(input)).toBe(expected);
  });
});
