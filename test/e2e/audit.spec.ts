import { AuditService } from '../../src/audit/audit.service';
import { PrismaService } from '../../src/database/prisma.service';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { closedByServer, connect, connectRefused, TestClient } from '../helpers/mqtt';

interface AuditItem {
  id: string;
  at: string;
  type: string;
  actor: string;
  target: string | null;
  detail: Record<string, unknown>;
}

/** The audit trail: every REST write route, the connection events, and the query API. */
describe(`audit log (${databaseKind()})`, () => {
  let app: TestApp;
  let audit: AuditService;
  let prisma: PrismaService;
  const open: TestClient[] = [];

  const events = async (slug: string, query = '', token?: string) => {
    const res = await app.api<{ items: AuditItem[]; nextCursor: string | null }>('GET', `/api/v1/tenants/${slug}/events${query}`, undefined, token);
    expect(res.status).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    app = await startTestApp();
    audit = app.running.app.get(AuditService);
    prisma = app.running.app.get(PrismaService);
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('records every REST write route: who, what, which resource, when; never a secret or a payload', async () => {
    const t = '/api/v1/tenants/aud';
    const ok = async (method: string, path: string, body?: unknown, token?: string) => {
      const res = await app.api(method, path, body, token);
      expect([200, 201, 202, 204]).toContain(res.status);
      return res.body;
    };
    const expected: [string, string, string | null, string][] = []; // route, type, target, actor
    const step = (route: string, type: string, target: string | null, actor = 'operator') => expected.push([route, type, target, actor]);

    await ok('POST', '/api/v1/tenants', { slug: 'aud' });
    step('POST /api/v1/tenants', 'tenant.create', null);
    await ok('PATCH', t, { name: 'Audited' });
    step('PATCH /api/v1/tenants/:slug', 'tenant.update', null);
    const key = await ok('POST', `${t}/api-keys`, { name: 'ci' });
    step('POST /api/v1/tenants/:slug/api-keys', 'api-key.create', `api-keys/${key.id}`);
    await ok('PATCH', t, { name: 'Audited by key' }, key.key);
    step('PATCH /api/v1/tenants/:slug', 'tenant.update', null, `api-key:${key.id}`);
    await ok('POST', `${t}/devices`, { name: 'd1', password: 'first-secret-1' });
    step('POST /api/v1/tenants/:slug/devices', 'device.create', 'devices/d1');
    await ok('PATCH', `${t}/devices/d1`, { enabled: true });
    step('PATCH /api/v1/tenants/:slug/devices/:name', 'device.update', 'devices/d1');
    const pw = (await ok('POST', `${t}/devices/d1/password`, {})).password as string;
    step('POST /api/v1/tenants/:slug/devices/:name/password', 'device.password', 'devices/d1');
    const cert = await ok('POST', `${t}/devices/d1/certificates`, {});
    step('POST /api/v1/tenants/:slug/devices/:name/certificates', 'certificate.create', `devices/d1/certificates/${cert.id}`);
    await ok('POST', `${t}/devices/d1/certificates/${cert.id}/revoke`);
    step('POST /api/v1/tenants/:slug/devices/:name/certificates/:id/revoke', 'certificate.revoke', `devices/d1/certificates/${cert.id}`);
    const rule = await ok('POST', `${t}/acls`, { device: null, action: 'all', topic: '#', permission: 'allow' });
    step('POST /api/v1/tenants/:slug/acls', 'acl.create', `acls/${rule.id}`);
    await ok('PATCH', `${t}/acls/${rule.id}`, { priority: 5 });
    step('PATCH /api/v1/tenants/:slug/acls/:id', 'acl.update', `acls/${rule.id}`);
    await ok('POST', `${t}/publish`, { topic: 'a/b', payload: 'top-secret-payload', retain: true });
    step('POST /api/v1/tenants/:slug/publish', 'tenant.publish', null);
    await ok('DELETE', `${t}/retained/${encodeURIComponent('a/b')}`);
    step('DELETE /api/v1/tenants/:slug/retained/:topic', 'retained.delete', 'retained/a/b');
    const c = await connect(app.mqttPort, { username: 'aud:d1', password: pw, clientId: 'kick-me' });
    open.push(c);
    await ok('DELETE', `${t}/sessions/kick-me`);
    step('DELETE /api/v1/tenants/:slug/sessions/:clientId', 'session.delete', 'sessions/kick-me');
    await ok('DELETE', `${t}/acls/${rule.id}`);
    step('DELETE /api/v1/tenants/:slug/acls/:id', 'acl.delete', `acls/${rule.id}`);
    await ok('DELETE', `${t}/devices/d1`);
    step('DELETE /api/v1/tenants/:slug/devices/:name', 'device.delete', 'devices/d1');
    await ok('DELETE', `${t}/api-keys/${key.id}`);
    step('DELETE /api/v1/tenants/:slug/api-keys/:id', 'api-key.delete', `api-keys/${key.id}`);

    // REST events are written before the response: no flush needed
    const page = await events('aud', '?limit=1000');
    const rest = page.items.filter((e) => e.actor === 'operator' || e.actor.startsWith('api-key:')).reverse();
    expect(rest.map((e) => [e.type, e.target, e.actor])).toEqual(expected.map(([, type, target, actor]) => [type, target, actor]));
    for (const e of rest) expect(Date.now() - Date.parse(e.at)).toBeLessThan(60_000);
    const all = JSON.stringify(rest);
    for (const secret of ['first-secret-1', pw, key.key, cert.privateKeyPem, 'top-secret-payload']) expect(all).not.toContain(secret);
    expect(rest.find((e) => e.type === 'device.create')?.detail).toEqual({ name: 'd1', password: '[redacted]' });
    expect(rest.find((e) => e.type === 'tenant.publish')?.detail).toMatchObject({ topic: 'a/b', payloadLength: 18, retain: true });

    // the session deleted through the API shows as a kick of that client
    await audit.flush();
    const kicks = (await events('aud', '?type=kick')).items;
    expect(kicks.map((e) => [e.target, e.actor, e.detail.clientId, e.detail.reason])).toEqual([
      ['devices/d1', 'broker', 'kick-me', 'session deleted through the API'],
    ]);

    // and the tenant's deletion, kept after the tenant is gone (read from the table itself)
    const { id: tenantId } = await prisma.db.tenant.findUniqueOrThrow({ where: { slug: 'aud' } });
    await ok('DELETE', t);
    step('DELETE /api/v1/tenants/:slug', 'tenant.delete', null);
    const last = await prisma.db.auditEvent.findFirstOrThrow({ where: { tenantId }, orderBy: { id: 'desc' } });
    expect([last.type, last.actor]).toEqual(['tenant.delete', 'operator']);

    // every write route the app registers was exercised above
    const writeRoutes = app.running.routes
      .filter((r) => ['POST', 'PUT', 'PATCH', 'DELETE'].includes(r.method) && r.url.startsWith('/api/v1/'))
      .map((r) => `${r.method} ${r.url}`);
    expect(new Set(expected.map(([route]) => route))).toEqual(new Set(writeRoutes));
  });

  it('records connects, refusals with their reason, disconnects and kicks, batched', async () => {
    await app.createTenant('conn-aud');
    await app.createDevice('conn-aud', 'd1', 'device-password');
    await app.createDevice('conn-aud', 'd2', 'device-password');
    await app.allow('conn-aud');
    const d1 = await connect(app.mqttPort, { username: 'conn-aud:d1', password: 'device-password', clientId: 'c-1' });
    await d1.end(); // a DISCONNECT
    expect(await connectRefused(app.mqttPort, { username: 'conn-aud:d1', password: 'wrong-password' })).toBe(4);
    const d2 = await connect(app.mqttPort, { username: 'conn-aud:d2', password: 'device-password', clientId: 'c-2' });
    open.push(d2);
    expect((await app.api('PATCH', '/api/v1/tenants/conn-aud/devices/d2', { enabled: false })).status).toBe(200);
    await closedByServer(d2);
    const unknown = await connectRefused(app.mqttPort, { username: 'conn-aud:ghost', password: 'device-password' });
    expect(unknown).toBe(4);
    await audit.flush();

    const byType = async (type: string) => (await events('conn-aud', `?type=${encodeURIComponent(type)}`)).items;
    const connects = await byType('connect');
    expect(connects.map((e) => [e.target, e.detail.clientId, e.actor])).toEqual([
      ['devices/d2', 'c-2', 'mqtt'],
      ['devices/d1', 'c-1', 'mqtt'],
    ]);
    expect(connects[0].detail).toMatchObject({ remoteAddress: expect.stringContaining('127.0.0.1'), authMethod: 'password' });
    // batched events keep the time they happened, to the millisecond
    for (const e of connects) expect(Math.abs(Date.now() - Date.parse(e.at))).toBeLessThan(60_000);
    expect(connects[0].at).toMatch(/\.\d{3}Z$/);
    const refused = await byType('connect.refused');
    expect(refused.map((e) => [e.target, e.detail.reason, e.detail.returnCode])).toEqual([
      ['devices/ghost', 'bad-credentials', 4],
      ['devices/d1', 'bad-credentials', 4],
    ]);
    expect((await byType('disconnect')).map((e) => [e.target, e.detail.reason])).toEqual([['devices/d1', 'client-disconnect']]);
    expect((await byType('kick')).map((e) => [e.target, e.actor, e.detail.reason])).toEqual([['devices/d2', 'broker', 'device changed']]);

    // filters: by device, by family, by time
    const d1Events = (await events('conn-aud', '?device=d1')).items.map((e) => e.type);
    expect(d1Events).toEqual(['connect.refused', 'disconnect', 'connect', 'device.create']);
    expect((await events('conn-aud', '?type=connect.*')).items).toHaveLength(2);
    expect((await events('conn-aud', `?since=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}`)).items).toEqual([]);
    const until = (await events('conn-aud', `?until=${encodeURIComponent(connects[1].at)}&type=device.*`)).items;
    expect(until.map((e) => e.target)).toEqual(['devices/d2', 'devices/d1']);
  });

  it('pages newest first with a stable cursor, and keeps tenants apart', async () => {
    await app.createTenant('page-aud');
    for (let i = 0; i < 5; i++) await app.createDevice('page-aud', `p${i}`, 'device-password');
    const seen: AuditItem[] = [];
    let cursor: string | null = '';
    while (cursor !== null) {
      const page = await events('page-aud', `?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items);
      cursor = page.nextCursor;
    }
    expect(seen.map((e) => e.type)).toEqual([...Array(5).fill('device.create'), 'tenant.create']);
    expect(seen.map((e) => e.target).slice(0, 5)).toEqual(['devices/p4', 'devices/p3', 'devices/p2', 'devices/p1', 'devices/p0']);
    const ids = seen.map((e) => BigInt(e.id));
    expect([...ids].sort((a, b) => (a > b ? -1 : 1))).toEqual(ids);

    // a tenant key reads its own tenant's events and no other's
    await app.createTenant('other-aud');
    const key = (await app.api('POST', '/api/v1/tenants/other-aud/api-keys', { name: 'k' })).body.key as string;
    expect((await app.api('GET', '/api/v1/tenants/page-aud/events', undefined, key)).status).toBe(404);
    const own = await events('other-aud', '', key);
    expect(own.items.map((e) => e.type)).toEqual(['api-key.create', 'tenant.create']);
  });

  it('refuses bad queries with 400 naming the field', async () => {
    await app.createTenant('bad-aud');
    for (const [query, field] of [
      ['?limit=0', 'limit'],
      ['?since=yesterday', 'since'],
      ['?device=no%20spaces', 'device'],
      ['?cursor=bm90LWEtbnVtYmVy', 'cursor'],
      ['?color=red', 'color'],
    ]) {
      const res = await app.api('GET', `/api/v1/tenants/bad-aud/events${query}`);
      expect(res.status).toBe(400);
      expect(res.body.errors.map((e: { field: string }) => e.field)).toContain(field);
    }
  });

  it('deletes events older than AUDIT_RETENTION_DAYS', async () => {
    await app.createTenant('old-aud');
    const { id: tenantId } = await prisma.db.tenant.findUniqueOrThrow({ where: { slug: 'old-aud' } });
    const day = 24 * 60 * 60 * 1000;
    await prisma.db.auditEvent.createMany({
      data: [
        { tenantId, type: 'test.old', actor: 'operator', at: new Date(Date.now() - 31 * day) },
        { tenantId, type: 'test.recent', actor: 'operator', at: new Date(Date.now() - 29 * day) },
      ],
    });
    expect(await audit.enforceRetention()).toBeGreaterThanOrEqual(1);
    const types = (await events('old-aud')).items.map((e) => e.type);
    expect(types).toEqual(['test.recent', 'tenant.create']);
  });
});
