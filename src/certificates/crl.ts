/**
 * Certificate revocation lists for a tenant CA, for clients of the API that want to check
 * revocation themselves (`openssl verify -crl_check`, a gateway, ...). The broker does not need
 * it: it refuses revoked serials from its in-memory set at CONNECT time.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { CertificateAuthorityPem, loadCa, PkiInputError, signingAlgorithm } from './pki';
import { normaliseSerialNumber } from './identifiers';

export type RevocationReason =
  | 'unspecified'
  | 'keyCompromise'
  | 'affiliationChanged'
  | 'superseded'
  | 'cessationOfOperation'
  | 'privilegeWithdrawn';

export interface RevokedCertificateEntry {
  /** hex, any case, leading zeros or not */
  serialNumber: string;
  revokedAt: Date;
  reason?: RevocationReason;
}

export interface CreateCrlParams {
  ca: CertificateAuthorityPem;
  revoked: readonly RevokedCertificateEntry[];
  /** monotonically increasing per CA (RFC 5280 cRLNumber); e.g. a counter or the epoch seconds */
  crlNumber: bigint | number;
  /** default now */
  thisUpdate?: Date;
  /** default 7 days after thisUpdate */
  nextUpdate?: Date;
}

const OID_CRL_NUMBER = '2.5.29.20';
const DAY_MS = 86_400_000;

/** DER INTEGER of a non-negative integer. */
function derInteger(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let bytes = Buffer.from(hex, 'hex');
  if (bytes[0] & 0x80) bytes = Buffer.concat([Buffer.from([0]), bytes]);
  if (bytes.length > 20) throw new PkiInputError('crlNumber', 'must fit in 20 octets');
  return Uint8Array.from([0x02, bytes.length, ...bytes]);
}

/**
 * A signed X.509 v2 CRL (with authorityKeyIdentifier and cRLNumber) as PEM with the
 * `X509 CRL` label: @peculiar/x509's own `toString('pem')` writes `BEGIN CRL`, which OpenSSL
 * refuses (TOOLCHAIN.md §4).
 */
export async function createCrl(params: CreateCrlParams): Promise<string> {
  const crlNumber = BigInt(params.crlNumber);
  if (crlNumber < 0n) throw new PkiInputError('crlNumber', 'must not be negative');
  const ca = await loadCa(params.ca);
  const thisUpdate = params.thisUpdate ?? new Date();
  const nextUpdate = params.nextUpdate ?? new Date(thisUpdate.getTime() + 7 * DAY_MS);
  if (nextUpdate.getTime() <= thisUpdate.getTime()) throw new PkiInputError('nextUpdate', 'must be after thisUpdate');

  const seen = new Set<string>();
  const entries: x509.X509CrlEntryParams[] = [];
  for (const entry of params.revoked) {
    const serial = normaliseSerialNumber(entry.serialNumber);
    if (!/^[0-9a-f]+$/.test(serial)) throw new PkiInputError('serialNumber', `"${entry.serialNumber}" is not hex`);
    if (seen.has(serial)) continue;
    seen.add(serial);
    entries.push({
      serialNumber: serial.length % 2 ? `0${serial}` : serial,
      revocationDate: entry.revokedAt,
      ...(entry.reason ? { reason: x509.X509CrlReason[entry.reason] } : {}),
    });
  }

  const crl = await x509.X509CrlGenerator.create({
    issuer: ca.cert.subjectName,
    thisUpdate,
    nextUpdate,
    signingKey: ca.signingKey,
    signingAlgorithm: signingAlgorithm(ca.signingKey),
    entries,
    extensions: [ca.authorityKeyIdentifier, new x509.Extension(OID_CRL_NUMBER, false, derInteger(crlNumber))],
  });
  return x509.PemConverter.encode(crl.rawData, 'X509 CRL');
}
