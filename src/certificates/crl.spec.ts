import { Scratch } from './openssl.test-helper';
import { createCrl } from './crl';
import { createCertificateAuthority, GeneratedCertificate, issueClientCertificate, IssuedCertificate, PkiInputError } from './pki';

let scratch: Scratch;
let ca: GeneratedCertificate;
let revokedCert: IssuedCertificate;
let goodCert: IssuedCertificate;

beforeAll(async () => {
  scratch = await Scratch.create();
  ca = await createCertificateAuthority({ commonName: 'tenant-a CA', keyAlgorithm: 'ec-p256', validityDays: 365 });
  [revokedCert, goodCert] = await Promise.all([
    issueClientCertificate({ ca, commonName: 'lost-device', validityDays: 30 }),
    issueClientCertificate({ ca, commonName: 'good-device', validityDays: 30 }),
  ]);
});

afterAll(async () => {
  await scratch.remove();
});

describe('createCrl', () => {
  let crlPem: string;
  beforeAll(async () => {
    crlPem = await createCrl({
      ca,
      crlNumber: 42,
      revoked: [
        { serialNumber: revokedCert.serialNumber.toUpperCase(), revokedAt: new Date(Date.now() - 60_000), reason: 'keyCompromise' },
        { serialNumber: revokedCert.serialNumber, revokedAt: new Date() }, // duplicate: listed once
        { serialNumber: 'abc', revokedAt: new Date() }, // odd length
        { serialNumber: 'ff00000000000000000000000000000a', revokedAt: new Date(), reason: 'superseded' }, // high bit set
      ],
    });
  });

  it('uses the X509 CRL PEM label that OpenSSL reads', async () => {
    expect(crlPem).toMatch(/^-----BEGIN X509 CRL-----\n/);
    const file = await scratch.write('crl.pem', crlPem);
    const caFile = await scratch.write('ca.pem', ca.certificatePem);
    const text = await scratch.openssl(['crl', '-in', file, '-noout', '-text', '-CAfile', caFile]);
    expect(text.code).toBe(0);
    expect(text.stderr).toContain('verify OK');
    expect(text.stdout).toMatch(/X509v3 CRL Number:\s*\n\s*42\n/);
    expect(text.stdout).toContain('X509v3 Authority Key Identifier');
    const serial = revokedCert.serialNumber.toUpperCase();
    expect(text.stdout).toContain(`Serial Number: ${serial.length % 2 ? `0${serial}` : serial}`);
    expect(text.stdout).toContain('Serial Number: 0ABC');
    expect(text.stdout).toContain('Serial Number: FF00000000000000000000000000000A');
    expect(text.stdout).toContain('Key Compromise');
    expect(text.stdout.match(/Serial Number:/g)).toHaveLength(3);
  });

  it('makes openssl verify -crl_check refuse the revoked certificate and only that one', async () => {
    const crl = await scratch.write('crl2.pem', crlPem);
    const caFile = await scratch.write('ca2.pem', ca.certificatePem);
    const revoked = await scratch.write('revoked.pem', revokedCert.certificatePem);
    const good = await scratch.write('good.pem', goodCert.certificatePem);
    const r1 = await scratch.openssl(['verify', '-crl_check', '-CRLfile', crl, '-CAfile', caFile, revoked]);
    expect(r1.code).not.toBe(0);
    expect(r1.stdout + r1.stderr).toContain('certificate revoked');
    const r2 = await scratch.openssl(['verify', '-crl_check', '-CRLfile', crl, '-CAfile', caFile, good]);
    expect(r2.stdout).toContain(': OK');
  });

  it('an empty CRL is valid too', async () => {
    const empty = await createCrl({ ca, crlNumber: 1n, revoked: [] });
    const crl = await scratch.write('empty.pem', empty);
    const caFile = await scratch.write('ca3.pem', ca.certificatePem);
    const good = await scratch.write('good3.pem', goodCert.certificatePem);
    expect((await scratch.openssl(['verify', '-crl_check', '-CRLfile', crl, '-CAfile', caFile, good])).stdout).toContain(': OK');
  });

  it('refuses non-hex serials and a nextUpdate before thisUpdate', async () => {
    await expect(createCrl({ ca, crlNumber: 1, revoked: [{ serialNumber: 'xyz', revokedAt: new Date() }] })).rejects.toBeInstanceOf(PkiInputError);
    await expect(
      createCrl({ ca, crlNumber: 1, revoked: [], thisUpdate: new Date(), nextUpdate: new Date(Date.now() - 1000) }),
    ).rejects.toMatchObject({ field: 'nextUpdate' });
    await expect(createCrl({ ca, crlNumber: -1, revoked: [] })).rejects.toMatchObject({ field: 'crlNumber' });
  });
});
