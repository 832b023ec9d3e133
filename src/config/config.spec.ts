import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from './config';

describe('loadConfig', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'config-'));
  const base = { DATA_DIR: dataDir, ADMIN_TOKEN: 'operator-token' };

  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it('reads PROXY_PROTOCOL as true or false (off unless set) and refuses anything else, naming it', () => {
    expect(loadConfig(base).proxyProtocol).toBe(false);
    expect(loadConfig({ ...base, PROXY_PROTOCOL: 'true' }).proxyProtocol).toBe(true);
    expect(loadConfig({ ...base, PROXY_PROTOCOL: '1' }).proxyProtocol).toBe(true);
    expect(loadConfig({ ...base, PROXY_PROTOCOL: 'false' }).proxyProtocol).toBe(false);
    expect(() => loadConfig({ ...base, PROXY_PROTOCOL: 'yes' })).toThrow('PROXY_PROTOCOL must be true or false, got "yes"');
  });
});
