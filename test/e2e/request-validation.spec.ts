import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { HTTP_METHODS, isServed, openApiDocument } from '../helpers/openapi';

/**
 * Every route of openapi/openapi.yaml: 401 without a token or with a bad one (before the body is
 * looked at); every write route: 400 naming the field for a malformed body, an unknown field, a
 * wrong value and a missing one; every list: 400 for a bad limit or cursor; bad path parameters.
 */

interface Operation {
  method: string;
  path: string;
  operationId: string;
  hasBody: boolean;
  secured: boolean;
  paged: boolean;
}

const doc = openApiDocument();
const operations: Operation[] = [];
for (const [path, item] of Object.entries<any>(doc.paths)) {
  for (const m of HTTP_METHODS) {
    const op = item[m];
    if (!op) continue;
    operations.push({
      method: m.toUpperCase(),
      path,
      operationId: op.operationId,
      hasBody: !!op.requestBody,
      secured: !(Array.isArray(op.security) && op.security.length === 0),
      paged: (op.parameters ?? []).some((p: any) => p.$ref === '#/components/parameters/Limit'),
    });
  }
}
const writes = operations.filter((o) => o.hasBody);

/** A body that passes validation, and bodies with one wrong field: [body, the field named]. */
const BODIES: Record<string, { valid: Record<string, unknown>; wrong: [Record<string, unknown>, string][] }> = {
  createTenant: { valid: { slug: 'fresh' }, wrong: [[{ slug: 'Not A Slug' }, 'slug'], [{}, 'slug'], [{ slug: 'fresh', limits: { maxConnections: 0 } }, 'limits.maxConnections']] },
  updateTenant: { valid: { name: 'Alpha' }, wrong: [[{ name: 5 }, 'name'], [{ defaultAclPermission: 'maybe' }, 'defaultAclPermission']] },
  createApiKey: { valid: { name: 'k' }, wrong: [[{ name: '' }, 'name'], [{}, 'name'], [{ name: 'a'.repeat(101) }, 'name']] },
  createDevice: { valid: { name: 'fresh-dev' }, wrong: [[{ name: 'bad name' }, 'name'], [{}, 'name'], [{ name: 'ok', password: 'short' }, 'password']] },
  updateDevice: { valid: { enabled: true }, wrong: [[{ enabled: 'no' }, 'enabled']] },
  setDevicePassword: { valid: { password: 'long-enough-password' }, wrong: [[{ password: 123 }, 'password'], [{ password: 'short' }, 'password']] },
  issueCertificate: { valid: { validityDays: 30 }, wrong: [[{ validityDays: 0 }, 'validityDays'], [{ validityDays: 826 }, 'validityDays']] },
  createAclRule: {
    valid: { action: 'all', topic: '#', permission: 'allow' },
    wrong: [
      [{ action: 'read', topic: '#', permission: 'allow' }, 'action'],
      [{ action: 'all', topic: 'a/#/b', permission: 'allow' }, 'topic'],
      [{ action: 'all', topic: '#' }, 'permission'],
    ],
  },
  updateAclRule: { valid: { priority: 1 }, wrong: [[{ topic: 'a+' }, 'topic'], [{ priority: 1.5 }, 'priority']] },
  publish: {
    valid: { topic: 't', payload: 'x' },
    wrong: [
      [{ topic: 'a/+', payload: 'x' }, 'topic'],
      [{ topic: '$SYS/x', payload: 'x' }, 'topic'],
      [{ payload: 'x' }, 'topic'],
      [{ topic: 't' }, 'payload'],
      [{ topic: 't', payload: 'x', qos: '1' }, 'qos'],
      [{ topic: 't', payload: '%%%', encoding: 'base64' }, 'payload'],
    ],
  },
};

describe(`request validation on every route (${databaseKind()})`, () => {
  let app: TestApp;
  const ids: Record<string, string> = {};

  const concrete = (path: string) =>
    path.replace(/\{(\w+)\}/g, (_, name: string) => {
      if (name === 'slug') return 'alpha';
      if (name === 'name') return 'd1';
      if (name === 'clientId') return 'nobody';
      if (name === 'topic') return encodeURIComponent('some/topic');
      if (path.includes('/acls/')) return ids.rule;
      if (path.includes('/api-keys/')) return ids.apiKey;
      return ids.certificate;
    });

  beforeAll(async () => {
    app = await startTestApp();
    await app.createTenant('alpha');
    await app.createDevice('alpha', 'd1', 'device-password');
    ids.rule = await app.allow('alpha');
    ids.apiKey = (await app.api('POST', '/api/v1/tenants/alpha/api-keys', { name: 'alpha-key' })).body.id;
    const cert = await app.api('POST', '/api/v1/tenants/alpha/devices/d1/certificates', {});
    ids.certificate = cert.status === 201 ? cert.body.id : '0000000000000000000000';
  });

  afterAll(async () => {
    await app?.close();
  });

  it('has bodies in this table for every write route', () => {
    expect(writes.filter((o) => !(o.operationId in BODIES)).map((o) => o.operationId)).toEqual([]);
  });

  it.each(operations.filter((o) => o.secured).map((o) => [`${o.method} ${o.path}`, o] as const))(
    '%s answers 401 without a token, with a bad one, and before validating the body',
    async (_, op) => {
      if (!isServed(app.running.routes, op.method, op.path)) return; // x-planned, not built yet
      const path = concrete(op.path);
      const body = op.hasBody ? { bogus: true } : undefined;
      for (const token of [null, 'not-a-token', 'mqk_' + 'A'.repeat(43), `${app.adminToken}x`]) {
        const res = await app.api(op.method, path, body, token);
        expect({ token, status: res.status }).toEqual({ token, status: 401 });
        expect(res.body.type).toBe('urn:problem:unauthorized');
      }
    },
  );

  it.each(writes.map((o) => [`${o.method} ${o.path}`, o] as const))('%s answers 400 naming the field for bad bodies', async (_, op) => {
    if (!isServed(app.running.routes, op.method, op.path)) return; // x-planned, not built yet
    const path = concrete(op.path);
    const fieldsOf = (r: { body: any }) => (r.body.errors ?? []).map((e: any) => e.field);

    const notJson = await app.api(op.method, path, '{"unterminated');
    expect(notJson.status).toBe(400);
    expect(fieldsOf(notJson)).toEqual(['body']);

    const unknown = await app.api(op.method, path, { ...BODIES[op.operationId].valid, surprise: 1 });
    expect(unknown.status).toBe(400);
    expect(fieldsOf(unknown)).toContain('surprise');

    for (const [body, field] of BODIES[op.operationId].wrong) {
      const res = await app.api(op.method, path, body);
      expect({ body, status: res.status, fields: fieldsOf(res) }).toEqual({ body, status: 400, fields: expect.arrayContaining([field]) });
      expect(res.headers.get('content-type')).toMatch(/application\/problem\+json/);
    }
  });

  it.each(operations.filter((o) => o.paged).map((o) => [`${o.method} ${o.path}`, o] as const))(
    '%s answers 400 for a bad limit or cursor',
    async (_, op) => {
      if (!isServed(app.running.routes, op.method, op.path)) return; // x-planned, not built yet
      const path = concrete(op.path);
      for (const [query, field] of [
        ['limit=0', 'limit'],
        ['limit=1001', 'limit'],
        ['limit=ten', 'limit'],
        ['cursor=not-ours!', 'cursor'],
      ]) {
        const res = await app.api(op.method, `${path}?${query}`);
        expect({ query, status: res.status, field: res.body.errors?.[0]?.field }).toEqual({ query, status: 400, field });
      }
    },
  );

  it.each([
    ['GET', '/api/v1/tenants/Not_A_Slug', 'slug'],
    ['GET', '/api/v1/tenants/alpha/devices/bad%20name', 'name'],
    ['GET', '/api/v1/tenants/alpha/acls/not-an-id', 'id'],
    ['DELETE', '/api/v1/tenants/alpha/api-keys/not-an-id', 'id'],
    ['GET', `/api/v1/tenants/alpha/retained/${encodeURIComponent('a/+')}`, 'topic'],
    ['DELETE', `/api/v1/tenants/alpha/retained/${encodeURIComponent('a/#')}`, 'topic'],
    ['GET', '/api/v1/tenants/alpha/sessions/nul%00id', 'clientId'],
    ['GET', '/api/v1/tenants/alpha/sessions?device=bad%20name', 'device'],
    ['GET', `/api/v1/tenants/alpha/retained?filter=${encodeURIComponent('a/#/b')}`, 'filter'],
  ])('%s %s answers 400 naming %s', async (method, path, field) => {
    const res = await app.api(method, path);
    expect(res.status).toBe(400);
    expect(res.body.errors.map((e: any) => e.field)).toContain(field);
  });
});
