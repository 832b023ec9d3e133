/**
 * MASTER_KEY handling and authenticated encryption of secrets at rest (CA private keys).
 *
 * - The key is 32 random bytes, given as base64 (standard or url-safe alphabet) in MASTER_KEY,
 *   or, when MASTER_KEY is unset/empty, generated once and kept in `<dataDir>/master.key`
 *   with mode 0600. Every node of a cluster must use the same key (DESIGN.md, "Cluster").
 * - Nothing in this module logs, and no error message contains key material or plaintext.
 * - Ciphertext format: `v1:<iv>:<tag>:<ciphertext>`, each part base64url without padding,
 *   AES-256-GCM with a random 96-bit IV and a 128-bit tag. The version prefix leaves room for
 *   key rotation or another cipher later.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';

export const MASTER_KEY_BYTES = 32;
export const MASTER_KEY_FILE_NAME = 'master.key';

const CIPHER = 'aes-256-gcm';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const FORMAT_VERSION = 'v1';

/** MASTER_KEY is present but unusable (wrong length, not base64) or the key file is broken. */
export class MasterKeyError extends Error {
  override readonly name = 'MasterKeyError';
}

/**
 * A ciphertext could not be decrypted: malformed, unknown version, wrong key, wrong associated
 * data or tampered with. Deliberately does not say which (and never echoes the input).
 */
export class SecretDecryptionError extends Error {
  override readonly name = 'SecretDecryptionError';
}

export interface LoadedMasterKey {
  key: Buffer;
  /** `env`: from the MASTER_KEY value; `file`: read from dataDir; `generated`: created now. */
  source: 'env' | 'file' | 'generated';
  /** the key file, when source is `file` or `generated` */
  path?: string;
  /** things worth a log line (no secrets in them), e.g. a key file readable by others */
  warnings: string[];
}

export interface LoadMasterKeyOptions {
  /** the MASTER_KEY environment value; undefined or blank means "use/generate the key file" */
  masterKey?: string | undefined;
  dataDir: string;
}

const BASE64_RE = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL_RE = /^[A-Za-z0-9_-]+={0,2}$/;

/** Decodes a base64 (or base64url) MASTER_KEY value into exactly 32 bytes, or throws MasterKeyError. */
export function parseMasterKey(value: string): Buffer {
  const text = value.trim();
  const isB64 = BASE64_RE.test(text);
  const isB64Url = !isB64 && BASE64URL_RE.test(text);
  if (!isB64 && !isB64Url) {
    throw new MasterKeyError(`MASTER_KEY must be ${MASTER_KEY_BYTES} bytes encoded in base64`);
  }
  const key = Buffer.from(text, isB64 ? 'base64' : 'base64url');
  if (key.length !== MASTER_KEY_BYTES) {
    throw new MasterKeyError(
      `MASTER_KEY must be ${MASTER_KEY_BYTES} bytes encoded in base64 (it decodes to ${key.length} bytes); ` +
        `generate one with: openssl rand -base64 ${MASTER_KEY_BYTES}`,
    );
  }
  return key;
}

/** A fresh random key, base64 encoded (the format MASTER_KEY and the key file use). */
export function generateMasterKey(): string {
  return randomBytes(MASTER_KEY_BYTES).toString('base64');
}

/**
 * Returns the master key: from `masterKey` when set, else from `<dataDir>/master.key`, creating
 * that file (mode 0600) when it does not exist. Creation is atomic (temp file + hard link), so two
 * processes starting at once on the same data dir end up with the same key.
 */
export async function loadOrCreateMasterKey(options: LoadMasterKeyOptions): Promise<LoadedMasterKey> {
  if (options.masterKey !== undefined && options.masterKey.trim() !== '') {
    return { key: parseMasterKey(options.masterKey), source: 'env', warnings: [] };
  }
  const file = path.join(options.dataDir, MASTER_KEY_FILE_NAME);
  const existing = await readKeyFile(file);
  if (existing) return existing;

  await fs.mkdir(options.dataDir, { recursive: true, mode: 0o700 });
  const encoded = generateMasterKey();
  const created = await createExclusive(file, `${encoded}\n`);
  if (!created) {
    // another process created it between our read and our write: use theirs
    const theirs = await readKeyFile(file);
    if (theirs) return theirs;
    throw new MasterKeyError(`${file} appeared but could not be read`);
  }
  return { key: parseMasterKey(encoded), source: 'generated', path: file, warnings: [] };
}

async function readKeyFile(file: string): Promise<LoadedMasterKey | undefined> {
  let text: string;
  let mode: number;
  try {
    const handle = await fs.open(file, 'r');
    try {
      mode = (await handle.stat()).mode;
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new MasterKeyError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let key: Buffer;
  try {
    key = parseMasterKey(text);
  } catch {
    // do not overwrite it: CA keys already encrypted with the old key would be lost
    throw new MasterKeyError(`${file} does not hold a ${MASTER_KEY_BYTES}-byte base64 key; fix or remove it`);
  }
  const warnings: string[] = [];
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    warnings.push(`${file} is accessible by group or others (mode ${(mode & 0o777).toString(8)}); run chmod 600 on it`);
  }
  return { key, source: 'file', path: file, warnings };
}

/** Writes `content` to `file` only if `file` does not exist yet. False when it already existed. */
async function createExclusive(file: string, content: string): Promise<boolean> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await fs.open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(content, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await fs.link(tmp, file); // atomic, fails with EEXIST instead of replacing
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw err;
    // file systems without hard links: exclusive create in place (not atomic w.r.t. readers)
    try {
      await fs.writeFile(file, content, { mode: 0o600, flag: 'wx' });
      return true;
    } catch (err2) {
      if ((err2 as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err2;
    }
  } finally {
    await fs.rm(tmp, { force: true });
  }
}

function assertKey(key: Buffer | Uint8Array): void {
  if (key.length !== MASTER_KEY_BYTES) {
    throw new MasterKeyError(`the master key must be ${MASTER_KEY_BYTES} bytes`);
  }
}

/**
 * Encrypts a secret (e.g. a PEM private key) with AES-256-GCM.
 * `associatedData`, when given, binds the ciphertext to a context (for example
 * `tenant-ca:<tenant id>`): decrypting with different associated data fails, so a ciphertext
 * copied into another row is refused. The same value must be given to decryptSecret.
 */
export function encryptSecret(plaintext: string, key: Buffer | Uint8Array, associatedData?: string): string {
  assertKey(key);
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
  if (associatedData !== undefined) cipher.setAAD(Buffer.from(associatedData, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  const tag = cipher.getAuthTag();
  return [FORMAT_VERSION, iv, tag, ciphertext]
    .map((part) => (typeof part === 'string' ? part : part.toString('base64url')))
    .join(':');
}

const B64URL_PART = /^[A-Za-z0-9_-]*$/;

/** Reverses encryptSecret; throws SecretDecryptionError on any malformation or authentication failure. */
export function decryptSecret(payload: string, key: Buffer | Uint8Array, associatedData?: string): string {
  assertKey(key);
  const parts = typeof payload === 'string' ? payload.split(':') : [];
  if (parts.length !== 4 || parts[0] !== FORMAT_VERSION || !parts.slice(1).every((p) => B64URL_PART.test(p))) {
    throw new SecretDecryptionError('encrypted secret is malformed or of an unknown version');
  }
  const iv = Buffer.from(parts[1], 'base64url');
  const tag = Buffer.from(parts[2], 'base64url');
  const ciphertext = Buffer.from(parts[3], 'base64url');
  if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) {
    throw new SecretDecryptionError('encrypted secret is malformed or of an unknown version');
  }
  try {
    const decipher = createDecipheriv(CIPHER, key, iv, { authTagLength: TAG_BYTES });
    if (associatedData !== undefined) decipher.setAAD(Buffer.from(associatedData, 'utf8'));
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    throw new SecretDecryptionError('encrypted secret failed authentication (wrong MASTER_KEY or tampered data)');
  }
}
