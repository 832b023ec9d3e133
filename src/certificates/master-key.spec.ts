import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  decryptSecret,
  encryptSecret,
  loadOrCreateMasterKey,
  MASTER_KEY_BYTES,
  MasterKeyError,
  parseMasterKey,
  SecretDecryptionError,
} from './master-key';

describe('parseMasterKey', () => {
  it('accepts 32 bytes in base64 and in base64url, surrounding whitespace ignored', () => {
    const raw = Buffer.from(Array.from({ length: 32 }, (_, i) => 250 - i)); // bytes that need + and /
    expect(parseMasterKey(raw.toString('base64'))).toEqual(raw);
    expect(parseMasterKey(` ${raw.toString('base64url')}\n`)).toEqual(raw);
  });

  it.each([
    ['16 bytes', randomBytes(16).toString('base64')],
    ['33 bytes', randomBytes(33).toString('base64')],
    ['not base64', 'this is not a key!!!'],
    ['hex', randomBytes(32).toString('hex')], // 64 hex chars decode as base64 to 48 bytes
  ])('refuses %s without echoing the value', (_label, value) => {
    let error: unknown;
    try {
      parseMasterKey(value);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MasterKeyError);
    expect((error as Error).message).not.toContain(value.trim());
  });
});

describe('loadOrCreateMasterKey', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'master-key-'));
  });
  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('uses MASTER_KEY when set and writes nothing', async () => {
    const value = randomBytes(32).toString('base64');
    const dataDir = path.join(dir, 'data');
    const loaded = await loadOrCreateMasterKey({ masterKey: value, dataDir });
    expect(loaded.source).toBe('env');
    expect(loaded.key.toString('base64')).toBe(value);
    await expect(fs.stat(dataDir)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('refuses a bad MASTER_KEY instead of silently generating one', async () => {
    await expect(loadOrCreateMasterKey({ masterKey: 'short', dataDir: dir })).rejects.toBeInstanceOf(MasterKeyError);
  });

  it('generates <dataDir>/master.key with mode 0600 when unset, then reuses it; blank counts as unset', async () => {
    const dataDir = path.join(dir, 'nested', 'data');
    const log = jest.spyOn(console, 'log').mockImplementation(() => undefined);
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const error = jest.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const first = await loadOrCreateMasterKey({ dataDir });
      expect(first.source).toBe('generated');
      expect(first.key).toHaveLength(MASTER_KEY_BYTES);
      const file = path.join(dataDir, 'master.key');
      expect(first.path).toBe(file);
      expect((await fs.stat(file)).mode & 0o777).toBe(0o600);
      expect(parseMasterKey(await fs.readFile(file, 'utf8'))).toEqual(first.key);
      // no temp files left behind
      expect(await fs.readdir(dataDir)).toEqual(['master.key']);

      const second = await loadOrCreateMasterKey({ masterKey: '  ', dataDir });
      expect(second.source).toBe('file');
      expect(second.key).toEqual(first.key);
      expect(second.warnings).toEqual([]);
      // never logged
      expect(log).not.toHaveBeenCalled();
      expect(warn).not.toHaveBeenCalled();
      expect(error).not.toHaveBeenCalled();
    } finally {
      log.mockRestore();
      warn.mockRestore();
      error.mockRestore();
    }
  });

  it('gives every concurrent starter the same key', async () => {
    const results = await Promise.all(Array.from({ length: 8 }, () => loadOrCreateMasterKey({ dataDir: dir })));
    const keys = new Set(results.map((r) => r.key.toString('hex')));
    expect(keys.size).toBe(1);
    expect(results.filter((r) => r.source === 'generated')).toHaveLength(1);
    expect(await fs.readdir(dir)).toEqual(['master.key']);
  });

  it('refuses (and keeps) a corrupt key file rather than replacing it', async () => {
    const file = path.join(dir, 'master.key');
    await fs.writeFile(file, 'garbage\n', { mode: 0o600 });
    await expect(loadOrCreateMasterKey({ dataDir: dir })).rejects.toBeInstanceOf(MasterKeyError);
    expect(await fs.readFile(file, 'utf8')).toBe('garbage\n');
  });

  it('warns (without the key) when the key file is readable by others', async () => {
    const file = path.join(dir, 'master.key');
    const value = randomBytes(32).toString('base64');
    await fs.writeFile(file, value);
    await fs.chmod(file, 0o644);
    const loaded = await loadOrCreateMasterKey({ dataDir: dir });
    expect(loaded.source).toBe('file');
    expect(loaded.warnings).toHaveLength(1);
    expect(loaded.warnings[0]).toContain('644');
    expect(loaded.warnings[0]).not.toContain(value);
  });
});

describe('encryptSecret / decryptSecret', () => {
  const key = randomBytes(32);
  const secret = '-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n ünïcødé ✓';

  it('round-trips, in the v1:<iv>:<tag>:<ct> base64url format, with a fresh IV each time', () => {
    const a = encryptSecret(secret, key);
    const b = encryptSecret(secret, key);
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]{16}:[A-Za-z0-9_-]{22}:[A-Za-z0-9_-]+$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain('PRIVATE KEY');
    expect(decryptSecret(a, key)).toBe(secret);
    expect(decryptSecret(b, key)).toBe(secret);
    expect(decryptSecret(encryptSecret('', key), key)).toBe('');
  });

  it('refuses the wrong key', () => {
    expect(() => decryptSecret(encryptSecret(secret, key), randomBytes(32))).toThrow(SecretDecryptionError);
  });

  function flipChar(payload: string, part: number): string {
    const parts = payload.split(':');
    const bytes = Buffer.from(parts[part], 'base64url');
    bytes[bytes.length >> 1] ^= 0x01;
    parts[part] = bytes.toString('base64url');
    return parts.join(':');
  }

  it.each([
    ['the IV', 1],
    ['the tag', 2],
    ['the ciphertext', 3],
  ])('detects tampering with %s', (_label, part) => {
    const payload = encryptSecret(secret, key);
    expect(() => decryptSecret(flipChar(payload, part), key)).toThrow(SecretDecryptionError);
  });

  it.each([
    ['truncated ciphertext', (p: string) => p.slice(0, -4)],
    ['missing part', (p: string) => p.split(':').slice(0, 3).join(':')],
    ['unknown version', (p: string) => p.replace(/^v1:/, 'v2:')],
    ['short tag', (p: string) => p.split(':').map((x, i) => (i === 2 ? x.slice(0, 10) : x)).join(':')],
    ['non-base64url characters', (p: string) => p.replace(/:([^:]*)$/, ':$1*')],
    ['empty string', () => ''],
  ])('refuses a malformed payload (%s)', (_label, mangle) => {
    expect(() => decryptSecret(mangle(encryptSecret(secret, key)), key)).toThrow(SecretDecryptionError);
  });

  it('binds the ciphertext to its associated data', () => {
    const payload = encryptSecret(secret, key, 'tenant-ca:tenant-a');
    expect(decryptSecret(payload, key, 'tenant-ca:tenant-a')).toBe(secret);
    expect(() => decryptSecret(payload, key, 'tenant-ca:tenant-b')).toThrow(SecretDecryptionError);
    expect(() => decryptSecret(payload, key)).toThrow(SecretDecryptionError);
  });

  it('does not echo the secret or the payload in errors', () => {
    const payload = flipChar(encryptSecret(secret, key), 3);
    try {
      decryptSecret(payload, key);
      throw new Error('should have failed');
    } catch (e) {
      expect((e as Error).message).not.toContain(payload.split(':')[3]);
      expect((e as Error).message).not.toContain('PRIVATE');
    }
  });

  it('refuses keys of the wrong length', () => {
    expect(() => encryptSecret(secret, randomBytes(16))).toThrow(MasterKeyError);
  });
});
