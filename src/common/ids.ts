import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghijklmnopqrstuvwxyz';

function randomAlnum(length: number): string {
  const bytes = randomBytes(length);
  let out = '';
  // the slight modulo bias (256 % 36) is irrelevant for identifiers
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i] % 36];
  return out;
}

/** Time-ordered ids (sortable like ULIDs), so lists ordered by id are stable and chronological. */
export function newId(): string {
  return Date.now().toString(36).padStart(9, '0') + randomAlnum(13);
}

/**
 * A tenant's internal id is its MQTT mountpoint: short (it prefixes every topic), random and
 * never reused, lower-case letters and digits only (no '/', '+', '#' or '$').
 */
export function newTenantId(): string {
  return 't' + randomAlnum(9);
}

export function newSecret(bytes = 24): string {
  return randomBytes(bytes).toString('base64url');
}
