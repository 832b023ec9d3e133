import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The only reader of process.env: parsed and validated once, typed. */
export interface AppConfig {
  host: string;
  httpPort: number;
  mqttPort: number;
  mqttsPort: number;
  wsPort: number;
  wssPort: number;
  dataDir: string;
  databaseUrl: string | undefined;
  redisUrl: string | undefined;
  adminToken: string;
  /** true when the token was generated at this start: it is printed once */
  adminTokenGenerated: boolean;
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  masterKey: string | undefined;
  anonymousTenant: string | undefined;
  maxPacketSize: number;
  sysIntervalSeconds: number;
  logLevel: string;
  /** names this node in logs, sessions and Redis; letters, digits, `.`, `_`, `-` */
  nodeId: string;
  /** a graceful shutdown taking longer than this exits with status 1 */
  shutdownTimeoutMs: number;
  bcryptCost: number;
  connectTimeoutMs: number;
  /** the MQTT listeners (all four) expect a PROXY protocol header first: nodes behind a TCP balancer */
  proxyProtocol: boolean;
  /** failed-login protection (DESIGN.md "Failed logins"); see src/broker/limits/login-guard.ts */
  authFail: {
    windowMs: number;
    lockoutMs: number;
    maxPerAddress: number;
    maxPerDevice: number;
    delayMs: number;
    maxTracked: number;
  };
  auditRetentionDays: number;
}

export const APP_CONFIG = Symbol('APP_CONFIG');

function port(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`${name} must be a port number (0-65535), got "${raw}"`);
  return n;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return n;
}

function nonNegativeInt(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return n;
}

function flag(env: NodeJS.ProcessEnv, name: string): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '' || raw === 'false' || raw === '0') return false;
  if (raw === 'true' || raw === '1') return true;
  throw new Error(`${name} must be true or false, got "${raw}"`);
}

function nodeId(env: NodeJS.ProcessEnv): string {
  const raw = env.NODE_ID;
  if (raw === undefined || raw === '') return randomBytes(4).toString('hex');
  // it becomes part of aedes' broker id, Redis keys (split on ':') and `$SYS/<id>/...` topics
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(raw)) throw new Error(`NODE_ID must be 1-64 letters, digits, '.', '_' or '-', got "${raw}"`);
  return raw;
}

function loadOrCreateAdminToken(dataDir: string, fromEnv: string | undefined): { token: string; generated: boolean } {
  if (fromEnv) return { token: fromEnv, generated: false };
  const file = join(dataDir, 'admin-token');
  if (existsSync(file)) return { token: readFileSync(file, 'utf8').trim(), generated: false };
  const token = randomBytes(32).toString('base64url');
  writeFileSync(file, token + '\n', { mode: 0o600 });
  return { token, generated: true };
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): AppConfig {
  const dataDir = resolve(env.DATA_DIR || './data');
  mkdirSync(dataDir, { recursive: true });
  const admin = loadOrCreateAdminToken(dataDir, env.ADMIN_TOKEN || undefined);
  const anonymousTenant = env.ANONYMOUS_TENANT || undefined;
  return {
    host: env.HOST || '0.0.0.0',
    httpPort: port(env, 'HTTP_PORT', 3000),
    mqttPort: port(env, 'MQTT_PORT', 1883),
    mqttsPort: port(env, 'MQTTS_PORT', 8883),
    wsPort: port(env, 'WS_PORT', 8083),
    wssPort: port(env, 'WSS_PORT', 8084),
    dataDir,
    databaseUrl: env.DATABASE_URL || undefined,
    redisUrl: env.REDIS_URL || undefined,
    adminToken: admin.token,
    adminTokenGenerated: admin.generated,
    tlsCert: env.TLS_CERT || undefined,
    tlsKey: env.TLS_KEY || undefined,
    masterKey: env.MASTER_KEY || undefined,
    anonymousTenant,
    maxPacketSize: positiveInt(env, 'MAX_PACKET_SIZE', 256 * 1024),
    sysIntervalSeconds: positiveInt(env, 'SYS_INTERVAL', 10),
    logLevel: env.LOG_LEVEL || 'info',
    nodeId: nodeId(env),
    shutdownTimeoutMs: positiveInt(env, 'SHUTDOWN_TIMEOUT', 10) * 1000,
    bcryptCost: positiveInt(env, 'BCRYPT_COST', 10),
    connectTimeoutMs: positiveInt(env, 'CONNECT_TIMEOUT_MS', 10_000),
    proxyProtocol: flag(env, 'PROXY_PROTOCOL'),
    authFail: {
      windowMs: positiveInt(env, 'AUTH_FAIL_WINDOW', 300) * 1000,
      lockoutMs: positiveInt(env, 'AUTH_FAIL_LOCKOUT', 300) * 1000,
      maxPerAddress: positiveInt(env, 'AUTH_FAIL_MAX_PER_ADDRESS', 10),
      maxPerDevice: positiveInt(env, 'AUTH_FAIL_MAX_PER_DEVICE', 5),
      delayMs: nonNegativeInt(env, 'AUTH_FAIL_DELAY_MS', 100),
      maxTracked: positiveInt(env, 'AUTH_FAIL_MAX_TRACKED', 100_000),
    },
    auditRetentionDays: positiveInt(env, 'AUDIT_RETENTION_DAYS', 30),
  };
}
