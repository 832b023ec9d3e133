/**
 * Per-tenant client-certificate check at MQTT CONNECT time (TOOLCHAIN.md §4, approach B).
 *
 * The TLS server runs with `requestCert: true, rejectUnauthorized: false`, so the handshake
 * accepts any client certificate; this function is the actual chain check. It is synchronous,
 * uses only Node's native X.509 (cheap: one parse and one signature verification per candidate
 * CA) and keeps no state, so a revocation or a CA change is effective on the next connect.
 * Revocation is NOT checked here: the caller tests the returned `serialNumber` against its
 * in-memory set of revoked serials (same normalisation as pki.ts).
 */
import { X509Certificate } from 'node:crypto';
import { DEVICE_NAME_PATTERN, normaliseSerialNumber } from './identifiers';

export interface TenantCaCandidate<K = string> {
  /** whatever identifies the tenant for the caller (slug, id) */
  tenantKey: K;
  caX509: X509Certificate;
}

/**
 * Candidate CAs for an issuer DN, as Node renders it (`X509Certificate#issuer` of the leaf,
 * equal to `X509Certificate#subject` of the CA). Several tenants may share a DN (a slug reused
 * after deletion, or a rogue CA copying a name): the signature decides, never the DN.
 */
export type CaLookup<K = string> = (issuerDn: string) => readonly TenantCaCandidate<K>[] | undefined;

export type ClientCertificateRejection =
  | 'no-certificate'
  /** the bytes are not an X.509 certificate (cannot normally get through a TLS handshake) */
  | 'malformed'
  | 'unknown-issuer'
  | 'bad-signature'
  | 'expired'
  | 'not-yet-valid'
  | 'not-a-client-certificate'
  | 'bad-common-name';

export interface ClientCertificateAccepted<K = string> {
  ok: true;
  tenantKey: K;
  /** the device name */
  commonName: string;
  /** lower-case hex without leading zeros: compare with the revoked set */
  serialNumber: string;
  /** lower-case hex SHA-256 of the DER, no colons */
  fingerprintSha256: string;
  notAfter: Date;
}

export interface ClientCertificateRefused {
  ok: false;
  reason: ClientCertificateRejection;
}

export type ClientCertificateVerdict<K = string> = ClientCertificateAccepted<K> | ClientCertificateRefused;

const OID_CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

const refuse = (reason: ClientCertificateRejection): ClientCertificateRefused => ({ ok: false, reason });

/**
 * Checks the peer certificate of a TLS connection against the tenant CAs.
 * @param raw `tlsSocket.getPeerCertificate(true).raw` (DER); undefined/empty when the client sent none
 * @param caForIssuer candidate CAs for the leaf's issuer DN
 * @param now for tests; defaults to the current time
 *
 * Order: identify the issuer by signature first (so an unauthenticated certificate learns
 * nothing more than "bad-signature"), then validity of CA and leaf, then the leaf's purpose
 * (cA:FALSE, EKU clientAuth), then the CN (exactly one, matching the device-name pattern).
 */
export function verifyClientCertificate<K = string>(
  raw: Uint8Array | null | undefined,
  caForIssuer: CaLookup<K>,
  now: number = Date.now(),
): ClientCertificateVerdict<K> {
  if (!raw || raw.length === 0) return refuse('no-certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(Buffer.isBuffer(raw) ? raw : Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength));
  } catch {
    return refuse('malformed');
  }

  const candidates = caForIssuer(leaf.issuer);
  if (!candidates || candidates.length === 0) return refuse('unknown-issuer');
  let issuer: TenantCaCandidate<K> | undefined;
  for (const candidate of candidates) {
    // checkIssued: issuer name/AKI match and the CA may sign certificates; verify: the signature
    let signed = false;
    try {
      signed = leaf.checkIssued(candidate.caX509) && leaf.verify(candidate.caX509.publicKey);
    } catch {
      signed = false;
    }
    if (signed) {
      issuer = candidate;
      break;
    }
  }
  if (!issuer) return refuse('bad-signature');

  const caNotBefore = Date.parse(issuer.caX509.validFrom);
  const caNotAfter = Date.parse(issuer.caX509.validTo);
  const notBefore = Date.parse(leaf.validFrom);
  const notAfter = Date.parse(leaf.validTo);
  if (!Number.isFinite(notBefore) || !Number.isFinite(notAfter)) return refuse('malformed');
  if (now > notAfter || now > caNotAfter) return refuse('expired');
  if (now < notBefore || now < caNotBefore) return refuse('not-yet-valid');

  if (leaf.ca) return refuse('not-a-client-certificate');
  const eku = leaf.keyUsage; // Node: the extended key usage OIDs (undefined when absent)
  if (!Array.isArray(eku) || !eku.includes(OID_CLIENT_AUTH)) return refuse('not-a-client-certificate');

  const commonName = singleCommonName(leaf.subject);
  if (commonName === undefined || !DEVICE_NAME_PATTERN.test(commonName)) return refuse('bad-common-name');

  return {
    ok: true,
    tenantKey: issuer.tenantKey,
    commonName,
    serialNumber: normaliseSerialNumber(leaf.serialNumber),
    fingerprintSha256: leaf.fingerprint256.replace(/:/g, '').toLowerCase(),
    notAfter: new Date(notAfter),
  };
}

/**
 * The single CN of Node's multi-line subject rendering. Node escapes control characters
 * (a NUL shows as `\00`) and RFC 2253 specials, and renders multi-valued RDNs on one line
 * joined with ` + `: all of these fail the device-name pattern afterwards, as they should.
 */
function singleCommonName(subject: string): string | undefined {
  let found: string | undefined;
  for (const line of subject.split('\n')) {
    if (line.startsWith('CN=')) {
      if (found !== undefined) return undefined; // two CNs: ambiguous, refuse
      found = line.slice(3);
    }
  }
  return found;
}

/**
 * A convenience CaLookup: tenant CAs indexed by subject DN. Keep one per node and update it when
 * a tenant (or its CA) is created or deleted; verification never caches per-certificate results.
 */
export class TenantCaIndex<K = string> {
  private readonly bySubject = new Map<string, TenantCaCandidate<K>[]>();
  private readonly byTenant = new Map<K, TenantCaCandidate<K>>();

  /** adds or replaces the CA of a tenant */
  set(tenantKey: K, ca: string | X509Certificate): void {
    this.delete(tenantKey);
    const caX509 = typeof ca === 'string' ? new X509Certificate(ca) : ca;
    const entry: TenantCaCandidate<K> = { tenantKey, caX509 };
    this.byTenant.set(tenantKey, entry);
    const list = this.bySubject.get(caX509.subject);
    if (list) list.push(entry);
    else this.bySubject.set(caX509.subject, [entry]);
  }

  delete(tenantKey: K): boolean {
    const entry = this.byTenant.get(tenantKey);
    if (!entry) return false;
    this.byTenant.delete(tenantKey);
    const subject = entry.caX509.subject;
    const rest = (this.bySubject.get(subject) ?? []).filter((e) => e !== entry);
    if (rest.length) this.bySubject.set(subject, rest);
    else this.bySubject.delete(subject);
    return true;
  }

  get size(): number {
    return this.byTenant.size;
  }

  /** bound, so it can be passed as `caForIssuer` directly */
  readonly lookup: CaLookup<K> = (issuerDn) => this.bySubject.get(issuerDn);
}
