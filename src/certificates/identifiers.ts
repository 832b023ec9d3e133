/**
 * Identifier formats shared by the issuer (pki.ts), the CONNECT-time verifier and the
 * REST/DB layers. Dependency-free on purpose.
 */
import { createHash } from 'node:crypto';

/** Device names (DESIGN.md); the CN of a client certificate must match it. */
export const DEVICE_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * `00AB:cd` / `0x00abcd` / `ABCD` -> `abcd`: the one format serials are stored and compared in
 * (lower-case hex, no leading zeros). Node's X509Certificate#serialNumber and `openssl -serial`
 * give upper case, @peculiar/x509 strips the DER sign byte: normalise both before comparing.
 */
export function normaliseSerialNumber(serial: string): string {
  const hex = serial.trim().replace(/^0x/i, '').replace(/[:\s]/g, '').toLowerCase();
  const stripped = hex.replace(/^0+/, '');
  return stripped === '' ? '0' : stripped;
}

/** SHA-256 of the DER certificate, lower-case hex without colons. */
export function fingerprintSha256(der: Uint8Array): string {
  return createHash('sha256').update(der).digest('hex');
}
