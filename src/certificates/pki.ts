/**
 * The PKI library: certificate authorities (the broker's server CA and one CA per tenant),
 * the broker's TLS server certificate, and device (client) certificates, issued from a CSR or
 * with a generated key. Pure TypeScript on @peculiar/x509 + WebCrypto; no Nest, no database.
 *
 * Conventions (shared with the verifier and the REST layer):
 * - PEM everywhere; private keys are PKCS#8 (`BEGIN PRIVATE KEY`), which Node's tls and
 *   mosquitto accept for EC and RSA.
 * - serialNumber: lower-case hex without leading zeros (what normaliseSerialNumber returns).
 * - fingerprintSha256: lower-case hex of SHA-256 over the DER certificate, no colons.
 */
import 'reflect-metadata'; // tsyringe inside @peculiar/x509 needs the reflect polyfill
import * as x509 from '@peculiar/x509';
import {
  createPrivateKey,
  createPublicKey,
  KeyObject,
  randomBytes,
  webcrypto,
  X509Certificate as NodeX509Certificate,
} from 'node:crypto';
import { isIP } from 'node:net';
import { DEVICE_NAME_PATTERN, fingerprintSha256, normaliseSerialNumber } from './identifiers';

export { DEVICE_NAME_PATTERN, fingerprintSha256, normaliseSerialNumber };

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type EcKeyGenParams = webcrypto.EcKeyGenParams;
type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
type EcdsaParams = webcrypto.EcdsaParams;
type Algorithm = webcrypto.Algorithm;

const subtle = webcrypto.subtle;

export type KeyAlgorithm = 'ec-p256' | 'rsa-2048';

const DAY_MS = 86_400_000;
/** notBefore is set this far in the past, so devices and nodes with a slightly slow clock accept a fresh certificate */
export const CLOCK_SKEW_ALLOWANCE_MS = 5 * 60_000;
/** upper bound for any validityDays given to this module (the REST layer enforces its own 1..825) */
export const MAX_VALIDITY_DAYS = 36_500;
const MAX_CSR_PEM_LENGTH = 64 * 1024;

// ---------------------------------------------------------------------------------------------
// Errors

/**
 * Bad input the caller should answer with a 400: `field` names the request field
 * (`csr`, `commonName`, `validityDays`, `hostnames`, `ips`), `message` is safe to show.
 */
export class PkiInputError extends Error {
  override readonly name: string = 'PkiInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

export type CsrErrorCode = 'malformed' | 'bad-signature' | 'unsupported-key';

/** The `csr` field is unusable. Always has field === 'csr'. */
export class CsrError extends PkiInputError {
  override readonly name = 'CsrError';
  constructor(
    readonly code: CsrErrorCode,
    message: string,
  ) {
    super('csr', message);
  }
}

/** The CA material given to us is unusable (bad PEM, key does not match, expired): a server-side problem. */
export class CertificateAuthorityError extends Error {
  override readonly name = 'CertificateAuthorityError';
}

// ---------------------------------------------------------------------------------------------
// Types

/** A CA as stored: certificate PEM and (decrypted) PKCS#8 private key PEM. */
export interface CertificateAuthorityPem {
  certificatePem: string;
  privateKeyPem: string;
}

export interface CertificateInfo {
  /** lower-case hex, no leading zeros */
  serialNumber: string;
  /** lower-case hex SHA-256 of the DER, no colons */
  fingerprintSha256: string;
  notBefore: Date;
  notAfter: Date;
  /** Node's rendering of the subject, e.g. `CN=dev-1` */
  subject: string;
  issuer: string;
}

export interface IssuedCertificate extends CertificateInfo {
  certificatePem: string;
  /** PKCS#8 PEM; present only when this module generated the key pair */
  privateKeyPem?: string;
}

export interface GeneratedCertificate extends IssuedCertificate {
  privateKeyPem: string;
}

/**
 * Explicit validity, bypassing validityDays and the clamping to the CA's lifetime.
 * INTERNAL: for tests (expired / not-yet-valid certificates). Never map user input to it.
 */
export interface ValidityOverride {
  notBefore: Date;
  notAfter: Date;
}

export interface CreateCertificateAuthorityParams {
  commonName: string;
  keyAlgorithm: KeyAlgorithm;
  validityDays: number;
  /** @internal tests only */
  validityOverride?: ValidityOverride;
}

export interface CreateServerCertificateParams {
  ca: CertificateAuthorityPem;
  /** DNS names for the SAN (e.g. `localhost`, `mqtt.example.com`, `*.example.com`) */
  hostnames: string[];
  /** IPv4/IPv6 addresses for the SAN (e.g. `127.0.0.1`, `::1`) */
  ips: string[];
  validityDays: number;
  /** default: the first hostname, else the first IP */
  commonName?: string;
  /** default `ec-p256` */
  keyAlgorithm?: KeyAlgorithm;
  /** @internal tests only */
  validityOverride?: ValidityOverride;
}

export interface IssueClientCertificateParams {
  ca: CertificateAuthorityPem;
  /** the device name: becomes the whole subject (`CN=<commonName>`), whatever the CSR asked for */
  commonName: string;
  /** PEM PKCS#10 request; when absent a key pair is generated and returned once */
  csrPem?: string;
  validityDays: number;
  /** key type when generating (no CSR); default `ec-p256` */
  keyAlgorithm?: KeyAlgorithm;
  /** @internal tests only */
  validityOverride?: ValidityOverride;
}

// ---------------------------------------------------------------------------------------------
// Small helpers (exported where other layers need the same normalisation)

/** Reads the facts we store about a certificate (PEM or DER) with Node's own X.509 parser. */
export function certificateInfo(certificate: string | Uint8Array): CertificateInfo {
  const cert = new NodeX509Certificate(typeof certificate === 'string' ? certificate : Buffer.from(certificate));
  return {
    serialNumber: normaliseSerialNumber(cert.serialNumber),
    fingerprintSha256: fingerprintSha256(cert.raw),
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
    subject: cert.subject,
    issuer: cert.issuer,
  };
}

/** 16 random bytes as hex (128 bits of entropy; DER positivity is handled by @peculiar/x509). */
function randomSerialHex(): string {
  return randomBytes(16).toString('hex');
}

function assertValidityDays(days: number, field = 'validityDays'): void {
  if (!Number.isInteger(days) || days < 1 || days > MAX_VALIDITY_DAYS) {
    throw new PkiInputError(field, `must be an integer between 1 and ${MAX_VALIDITY_DAYS}`);
  }
}

function assertCommonName(name: string, field: string, pattern: RegExp, what: string): void {
  if (typeof name !== 'string' || !pattern.test(name)) {
    throw new PkiInputError(field, `must be ${what}`);
  }
}

/** Whole seconds: X.509 times have no milliseconds, and we report what is in the certificate. */
function floorToSecond(ms: number): Date {
  return new Date(Math.floor(ms / 1000) * 1000);
}

function validityWindow(
  validityDays: number,
  override: ValidityOverride | undefined,
  caNotAfter?: Date,
): { notBefore: Date; notAfter: Date } {
  if (override) {
    if (!(override.notBefore.getTime() < override.notAfter.getTime())) {
      throw new PkiInputError('validity', 'notBefore must be before notAfter');
    }
    return { notBefore: floorToSecond(override.notBefore.getTime()), notAfter: floorToSecond(override.notAfter.getTime()) };
  }
  assertValidityDays(validityDays);
  const now = Date.now();
  const notBefore = floorToSecond(now - CLOCK_SKEW_ALLOWANCE_MS);
  let notAfter = floorToSecond(now + validityDays * DAY_MS);
  // a certificate never outlives its issuer: clamp, and report the clamped date
  if (caNotAfter && notAfter.getTime() > caNotAfter.getTime()) notAfter = new Date(caNotAfter.getTime());
  return { notBefore, notAfter };
}

function keyGenParams(alg: KeyAlgorithm): EcKeyGenParams | RsaHashedKeyGenParams {
  switch (alg) {
    case 'ec-p256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'rsa-2048':
      return { name: 'RSASSA-PKCS1-v1_5', modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' };
    default:
      throw new PkiInputError('keyAlgorithm', `must be ec-p256 or rsa-2048`);
  }
}

async function generateKeyPair(alg: KeyAlgorithm): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(keyGenParams(alg), true, ['sign', 'verify'])) as CryptoKeyPair;
}

export function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  if (key.algorithm.name === 'ECDSA') {
    const curve = (key.algorithm as webcrypto.EcKeyAlgorithm).namedCurve;
    return { name: 'ECDSA', hash: curve === 'P-384' ? 'SHA-384' : curve === 'P-521' ? 'SHA-512' : 'SHA-256' } as EcdsaParams;
  }
  return { name: 'RSASSA-PKCS1-v1_5' };
}

async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

function certificateResult(cert: x509.X509Certificate, privateKeyPem?: string): IssuedCertificate {
  const certificatePem = cert.toString('pem');
  const info = certificateInfo(new Uint8Array(cert.rawData));
  return privateKeyPem === undefined ? { certificatePem, ...info } : { certificatePem, privateKeyPem, ...info };
}

function isRsa(key: CryptoKey): boolean {
  return key.algorithm.name === 'RSASSA-PKCS1-v1_5' || key.algorithm.name === 'RSA-PSS';
}

function leafKeyUsage(rsaSubjectKey: boolean): x509.KeyUsagesExtension {
  // keyEncipherment only matters for RSA key transport (TLS 1.2 RSA kx); EC keys only sign
  const flags = rsaSubjectKey
    ? x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment
    : x509.KeyUsageFlags.digitalSignature;
  return new x509.KeyUsagesExtension(flags, true);
}

// ---------------------------------------------------------------------------------------------
// Loading a CA

/** A CA ready to sign: parsed certificate, imported (non-extractable) key, AKI for what it signs. */
export interface LoadedCa {
  cert: x509.X509Certificate;
  signingKey: CryptoKey;
  notAfter: Date;
  authorityKeyIdentifier: x509.AuthorityKeyIdentifierExtension;
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  let keyObject: KeyObject;
  try {
    keyObject = createPrivateKey(pem);
  } catch {
    throw new CertificateAuthorityError('CA private key is not a readable PEM private key');
  }
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  if (keyObject.asymmetricKeyType === 'ec') {
    const curve = keyObject.asymmetricKeyDetails?.namedCurve;
    const namedCurve = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : undefined;
    if (!namedCurve) throw new CertificateAuthorityError(`CA key curve ${curve ?? '?'} is not supported`);
    return subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, false, ['sign']);
  }
  if (keyObject.asymmetricKeyType === 'rsa') {
    return subtle.importKey('pkcs8', der, { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, false, ['sign']);
  }
  throw new CertificateAuthorityError(`CA key type ${keyObject.asymmetricKeyType ?? '?'} is not supported`);
}

/**
 * Parses a stored CA and checks it can sign now: a CA certificate, the key matching it, inside
 * its validity. Throws CertificateAuthorityError otherwise.
 */
export async function loadCa(ca: CertificateAuthorityPem, now = Date.now()): Promise<LoadedCa> {
  let cert: x509.X509Certificate;
  let nodeCert: NodeX509Certificate;
  try {
    cert = new x509.X509Certificate(ca.certificatePem);
    nodeCert = new NodeX509Certificate(ca.certificatePem);
  } catch {
    throw new CertificateAuthorityError('CA certificate is not a readable PEM certificate');
  }
  if (!nodeCert.ca) throw new CertificateAuthorityError('CA certificate is not a CA (basicConstraints cA is false)');
  const signingKey = await importPrivateKey(ca.privateKeyPem);
  // the key must belong to the certificate, or every certificate we issue would fail to verify
  const certSpki = nodeCert.publicKey.export({ type: 'spki', format: 'der' });
  const keySpki = createPublicKey(createPrivateKey(ca.privateKeyPem)).export({ type: 'spki', format: 'der' });
  if (!certSpki.equals(keySpki)) throw new CertificateAuthorityError('CA private key does not match the CA certificate');
  const notAfter = cert.notAfter;
  if (now < cert.notBefore.getTime() || now > notAfter.getTime()) {
    throw new CertificateAuthorityError(`CA certificate is not valid now (valid ${cert.notBefore.toISOString()} .. ${notAfter.toISOString()})`);
  }
  // AKI = the CA's own SKI when it has one, so that chain builders match them byte for byte
  const ski = cert.getExtension(x509.SubjectKeyIdentifierExtension);
  const authorityKeyIdentifier = ski
    ? new x509.AuthorityKeyIdentifierExtension(ski.keyId, false)
    : await x509.AuthorityKeyIdentifierExtension.create(cert.publicKey, false);
  return { cert, signingKey, notAfter, authorityKeyIdentifier };
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * A self-signed CA: basicConstraints cA:TRUE pathLen:0 (critical: it signs leaves only),
 * keyUsage keyCertSign|cRLSign (critical), subjectKeyIdentifier. Subject `CN=<commonName>`.
 */
export async function createCertificateAuthority(params: CreateCertificateAuthorityParams): Promise<GeneratedCertificate> {
  assertCommonName(params.commonName, 'commonName', /^[^\u0000-\u001f\u007f]{1,64}$/, '1 to 64 printable characters');
  const { notBefore, notAfter } = validityWindow(params.validityDays, params.validityOverride);
  const keys = await generateKeyPair(params.keyAlgorithm);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerialHex(),
    name: [{ CN: [params.commonName] }],
    notBefore,
    notAfter,
    keys,
    signingAlgorithm: signingAlgorithm(keys.privateKey),
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return certificateResult(cert, await exportPrivateKeyPem(keys.privateKey)) as GeneratedCertificate;
}

const HOSTNAME_RE = /^(\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*$/;

/**
 * The broker's TLS server certificate, signed by `ca`, with a fresh key pair (returned):
 * SAN = every hostname (dNSName) and ip (iPAddress), EKU serverAuth, AKI/SKI, cA:FALSE.
 */
export async function createServerCertificate(params: CreateServerCertificateParams): Promise<GeneratedCertificate> {
  const hostnames = [...new Set((params.hostnames ?? []).map((h) => h.trim().toLowerCase()))];
  const ips = [...new Set((params.ips ?? []).map((ip) => ip.trim()))];
  for (const h of hostnames) {
    if (h.length > 253 || !HOSTNAME_RE.test(h)) throw new PkiInputError('hostnames', `"${h}" is not a valid DNS name`);
  }
  for (const ip of ips) {
    if (isIP(ip) === 0) throw new PkiInputError('ips', `"${ip}" is not an IP address`);
  }
  if (hostnames.length === 0 && ips.length === 0) {
    throw new PkiInputError('hostnames', 'at least one hostname or IP address is required');
  }
  const commonName = params.commonName ?? hostnames[0] ?? ips[0];
  assertCommonName(commonName, 'commonName', /^[^\u0000-\u001f\u007f]{1,64}$/, '1 to 64 printable characters');

  const ca = await loadCa(params.ca);
  const { notBefore, notAfter } = validityWindow(params.validityDays, params.validityOverride, ca.notAfter);
  const keys = await generateKeyPair(params.keyAlgorithm ?? 'ec-p256');
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: [{ CN: [commonName] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: signingAlgorithm(ca.signingKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      leafKeyUsage(isRsa(keys.publicKey)),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...hostnames.map((value) => ({ type: 'dns' as const, value })),
        ...ips.map((value) => ({ type: 'ip' as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ca.authorityKeyIdentifier,
    ],
  });
  return certificateResult(cert, await exportPrivateKeyPem(keys.privateKey)) as GeneratedCertificate;
}

export interface CsrPublicKey {
  spki: ArrayBuffer;
  rsa: boolean;
}

/**
 * Parses and checks a PEM PKCS#10 request: one `CERTIFICATE REQUEST` block, a valid
 * self-signature (proof of possession), and a key we accept (RSA 2048..8192 bits or EC P-256/P-384).
 * Throws CsrError (field `csr`) otherwise. Its subject and requested extensions are ignored.
 */
export async function parseCertificateSigningRequest(csrPem: string): Promise<CsrPublicKey> {
  if (typeof csrPem !== 'string' || csrPem.trim() === '') throw new CsrError('malformed', 'must be a PEM certificate signing request');
  if (csrPem.length > MAX_CSR_PEM_LENGTH) throw new CsrError('malformed', 'is too large');
  const blocks = [...csrPem.matchAll(/-----BEGIN (NEW )?CERTIFICATE REQUEST-----([\s\S]*?)-----END (NEW )?CERTIFICATE REQUEST-----/g)];
  if (blocks.length !== 1) {
    throw new CsrError('malformed', 'must contain exactly one PEM block "-----BEGIN CERTIFICATE REQUEST-----"');
  }
  const body = blocks[0][2].replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) throw new CsrError('malformed', 'PEM body is not base64');
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(Buffer.from(body, 'base64'));
  } catch {
    throw new CsrError('malformed', 'is not a valid PKCS#10 certificate signing request');
  }

  const spki = csr.publicKey.rawData;
  let keyObject: KeyObject;
  try {
    keyObject = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    throw new CsrError('unsupported-key', 'public key cannot be read');
  }
  const details = keyObject.asymmetricKeyDetails ?? {};
  let rsa = false;
  if (keyObject.asymmetricKeyType === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048 || bits > 8192) throw new CsrError('unsupported-key', `RSA key of ${bits} bits: use 2048 to 8192 bits`);
    rsa = true;
  } else if (keyObject.asymmetricKeyType === 'ec') {
    if (details.namedCurve !== 'prime256v1' && details.namedCurve !== 'secp384r1') {
      throw new CsrError('unsupported-key', `EC curve ${details.namedCurve ?? '?'}: use P-256 or P-384`);
    }
  } else {
    throw new CsrError('unsupported-key', `${keyObject.asymmetricKeyType ?? 'unknown'} keys are not supported: use EC P-256/P-384 or RSA`);
  }
  let verified: boolean;
  try {
    verified = await csr.verify();
  } catch {
    verified = false;
  }
  if (!verified) throw new CsrError('bad-signature', 'signature does not verify (the request was altered or not signed by its key)');
  return { spki, rsa };
}

/**
 * A device certificate signed by the tenant CA. Subject is exactly `CN=<commonName>` (the
 * device name is authoritative, not what a CSR asks for); EKU clientAuth; keyUsage
 * digitalSignature (+keyEncipherment for RSA keys); cA:FALSE; SKI/AKI.
 * With `csrPem` the CSR's key is certified (privateKeyPem absent); without, a key pair is
 * generated and its private key returned (PKCS#8 PEM) - show it once, never store it.
 */
export async function issueClientCertificate(params: IssueClientCertificateParams): Promise<IssuedCertificate> {
  assertCommonName(params.commonName, 'commonName', DEVICE_NAME_PATTERN, 'a device name (1 to 64 of A-Z a-z 0-9 . _ -)');
  if (!params.validityOverride) assertValidityDays(params.validityDays);

  let subjectPublicKey: CryptoKey | ArrayBuffer;
  let rsaSubjectKey: boolean;
  let generated: CryptoKeyPair | undefined;
  if (params.csrPem !== undefined && params.csrPem !== null) {
    const csr = await parseCertificateSigningRequest(params.csrPem);
    subjectPublicKey = csr.spki;
    rsaSubjectKey = csr.rsa;
  } else {
    generated = await generateKeyPair(params.keyAlgorithm ?? 'ec-p256');
    subjectPublicKey = generated.publicKey;
    rsaSubjectKey = isRsa(generated.publicKey);
  }

  const ca = await loadCa(params.ca);
  const { notBefore, notAfter } = validityWindow(params.validityDays, params.validityOverride, ca.notAfter);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerialHex(),
    subject: [{ CN: [params.commonName] }],
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: subjectPublicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: signingAlgorithm(ca.signingKey),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      leafKeyUsage(rsaSubjectKey),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      await x509.SubjectKeyIdentifierExtension.create(subjectPublicKey),
      ca.authorityKeyIdentifier,
    ],
  });
  return certificateResult(cert, generated ? await exportPrivateKeyPem(generated.privateKey) : undefined);
}
