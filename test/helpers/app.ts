import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPgDatabase } from './pg';
import { startApp, RunningApp } from '../../src/app.factory';
import { AppConfig, loadConfig } from '../../src/config/config';
import { responseMismatch } from './openapi';

export interface TestApp {
  running: RunningApp;
  config: AppConfig;
  http: string;
  mqttPort: number;
  wsPort: number;
  mqttsPort: number;
  wssPort: number;
  adminToken: string;
  api<T = any>(method: string, path: string, body?: unknown, token?: string | null): Promise<ApiResponse<T>>;
  /** tenant + device (password given) + an allow-all rule unless `rules` is given */
  createTenant(slug: string, body?: Record<string, unknown>): Promise<void>;
  createDevice(slug: string, name: string, password: string): Promise<void>;
  allow(slug: string, rule?: Partial<{ device: string | null; action: string; topic: string; permission: string; priority: number }>): Promise<string>;
  close(): Promise<void>;
}

export interface ApiResponse<T> {
  status: number;
  headers: Headers;
  body: T;
}

/** Which database the suite runs on: `TEST_DATABASE=postgres` with `TEST_PG_URL` set, else PGlite. */
export const databaseKind = (): 'postgres' | 'pglite' =>
  process.env.TEST_DATABASE === 'postgres' && process.env.TEST_PG_URL ? 'postgres' : 'pglite';

/**
 * For suites whose service keeps no database state per connection (it runs as its own
 * process, on PGlite): test/run.sh's PostgreSQL pass would only repeat them, so they run in the
 * PGlite pass alone.
 */
export const describeOnce: jest.Describe = databaseKind() === 'postgres' ? describe.skip : describe;

/** Starts the real service on ephemeral ports, with its own data directory and database. */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mqtt-test-'));
  const adminToken = randomBytes(16).toString('hex');
  const pg = databaseKind() === 'postgres' ? await createPgDatabase(process.env.TEST_PG_URL as string) : undefined;
  const config = loadConfig({
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_PORT: '0',
    MQTTS_PORT: '0',
    WS_PORT: '0',
    WSS_PORT: '0',
    DATA_DIR: dataDir,
    ADMIN_TOKEN: adminToken,
    LOG_LEVEL: 'warn',
    BCRYPT_COST: '4',
    // suites share 127.0.0.1 and try wrong passwords on purpose: failed-login protection is
    // tested on its own (test/e2e/login-protection.spec.ts)
    AUTH_FAIL_DELAY_MS: '0',
    AUTH_FAIL_MAX_PER_ADDRESS: '1000000',
    AUTH_FAIL_MAX_PER_DEVICE: '1000000',
    ...(pg ? { DATABASE_URL: pg.url } : {}),
    ...env,
  });
  const running = await startApp(config);
  const http = `http://127.0.0.1:${running.ports.http}`;

  const api = async <T>(method: string, path: string, body?: unknown, token: string | null = adminToken) => {
    const headers: Record<string, string> = {};
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(http + path, { method, headers, body: payload });
    const text = await res.text();
    let parsed: unknown = text;
    if (text && /json/.test(res.headers.get('content-type') ?? '')) parsed = JSON.parse(text);
    // every response an e2e test sees must be one openapi/openapi.yaml documents
    const mismatch = responseMismatch(method, path, res.status, res.headers.get('content-type'), parsed);
    if (mismatch) throw new Error(`response does not match openapi/openapi.yaml: ${mismatch}`);
    return { status: res.status, headers: res.headers, body: parsed as T };
  };

  const expectStatus = (res: ApiResponse<unknown>, status: number, what: string) => {
    if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
  };

  return {
    running,
    config,
    http,
    mqttPort: running.ports.mqtt,
    wsPort: running.ports.ws,
    mqttsPort: running.ports.mqtts,
    wssPort: running.ports.wss,
    adminToken,
    api,
    async createTenant(slug, body = {}) {
      expectStatus(await api('POST', '/api/v1/tenants', { slug, ...body }), 201, `create tenant ${slug}`);
    },
    async createDevice(slug, name, password) {
      expectStatus(await api('POST', `/api/v1/tenants/${slug}/devices`, { name, password }), 201, `create device ${name}`);
    },
    async allow(slug, rule = {}) {
      const res = await api<{ id: string }>('POST', `/api/v1/tenants/${slug}/acls`, {
        action: 'all',
        topic: '#',
        permission: 'allow',
        ...rule,
      });
      expectStatus(res, 201, `create rule in ${slug}`);
      return res.body.id;
    },
    async close() {
      await running.close();
      await pg?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
