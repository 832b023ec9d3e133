import { BrokerService } from '../../src/broker/broker.service';
import { Mountpoint } from '../../src/broker/tenancy/mountpoint';
import { PrismaService } from '../../src/database/prisma.service';
import { closedByServer, connect, TestClient } from '../helpers/mqtt';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';

/**
 * The admin API over HTTP against the running service, with real MQTT clients connected:
 * API keys, live sessions, publish over REST and retained messages.
 */
describe(`admin API (${databaseKind()})`, () => {
  let app: TestApp;
  const open: TestClient[] = [];
  const pw = 'correct-horse-battery';

  const dev = async (slug: string, name: string, opts: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(app.mqttPort, { username: `${slug}:${name}`, password: pw, ...opts });
    open.push(c);
    return c;
  };
  const enc = encodeURIComponent;

  beforeAll(async () => {
    app = await startTestApp();
    for (const slug of ['alpha', 'bravo']) {
      await app.createTenant(slug);
      for (const name of ['d1', 'd2']) await app.createDevice(slug, name, pw);
      await app.allow(slug);
    }
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
  });

  describe('API keys', () => {
    it('are shown once, listed without secret, reach their own tenant, and stop working when revoked', async () => {
      const created = await app.api('POST', '/api/v1/tenants/alpha/api-keys', { name: 'ci' });
      expect(created.status).toBe(201);
      const { id, key } = created.body;
      expect(key).toMatch(/^mqk_[A-Za-z0-9_-]{43}$/);
      expect(Object.keys(created.body).sort()).toEqual(['createdAt', 'id', 'key', 'name']);

      const listed = await app.api('GET', '/api/v1/tenants/alpha/api-keys');
      expect(listed.status).toBe(200);
      expect(listed.body.items).toEqual([{ id, name: 'ci', createdAt: created.body.createdAt, lastUsedAt: null }]);
      // stored as SHA-256, never as the key
      const row = await app.running.app.get(PrismaService).db.apiKey.findUniqueOrThrow({ where: { id } });
      expect(row.keyHash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.keyHash).not.toContain(key);
      expect(JSON.stringify(listed.body)).not.toContain(row.keyHash);

      // the key reaches its tenant's routes
      const firstUse = Date.now();
      expect((await app.api('GET', '/api/v1/tenants/alpha', undefined, key)).status).toBe(200);
      const lastUsedAt = (await app.api('GET', '/api/v1/tenants/alpha/api-keys')).body.items[0].lastUsedAt;
      // stamped by the service's clock, like firstUse
      expect(Date.parse(lastUsedAt)).toBeGreaterThanOrEqual(firstUse);
      expect(Date.parse(lastUsedAt)).toBeLessThanOrEqual(Date.now());
      expect((await app.api('GET', '/api/v1/tenants/alpha/devices', undefined, key)).body.items.map((d: any) => d.name)).toEqual(['d1', 'd2']);
      const made = await app.api('POST', '/api/v1/tenants/alpha/devices', { name: 'by-key' }, key);
      expect(made.status).toBe(201);
      expect((await app.api('PATCH', '/api/v1/tenants/alpha', { name: 'Alpha Inc' }, key)).status).toBe(200);
      // GET /tenants lists its own tenant only
      const tenants = await app.api('GET', '/api/v1/tenants', undefined, key);
      expect(tenants.body.items.map((t: any) => t.slug)).toEqual(['alpha']);
      // written once a minute at most, not on every request
      expect((await app.api('GET', '/api/v1/tenants/alpha/api-keys')).body.items[0].lastUsedAt).toBe(lastUsedAt);

      // revoked: refused at the next request
      expect((await app.api('DELETE', `/api/v1/tenants/alpha/api-keys/${id}`)).status).toBe(204);
      expect((await app.api('GET', '/api/v1/tenants/alpha', undefined, key)).status).toBe(401);
      expect((await app.api('DELETE', `/api/v1/tenants/alpha/api-keys/${id}`)).status).toBe(404);
      expect((await app.api('GET', '/api/v1/tenants/alpha/api-keys')).body.items).toEqual([]);
    });

    it('refuses a tenant key what only the operator may do (403) and a duplicate name (409)', async () => {
      const { body } = await app.api('POST', '/api/v1/tenants/alpha/api-keys', { name: 'limited' });
      const key = body.key as string;
      const forbidden = [
        await app.api('POST', '/api/v1/tenants', { slug: 'by-key' }, key),
        await app.api('DELETE', '/api/v1/tenants/alpha', undefined, key),
        await app.api('PATCH', '/api/v1/tenants/alpha', { limits: { maxConnections: 5 } }, key),
        await app.api('GET', '/api/v1/tenants/alpha/api-keys', undefined, key),
        await app.api('POST', '/api/v1/tenants/alpha/api-keys', { name: 'escalate' }, key),
        await app.api('DELETE', `/api/v1/tenants/alpha/api-keys/${body.id}`, undefined, key),
      ];
      expect(forbidden.map((r) => r.status)).toEqual([403, 403, 403, 403, 403, 403]);
      expect(forbidden[0].body.type).toBe('urn:problem:forbidden');
      expect((await app.api('GET', '/api/v1/tenants/alpha')).body.limits.maxConnections).not.toBe(5);
      expect((await app.api('GET', '/api/v1/tenants/alpha', undefined, key)).status).toBe(200);

      const dup = await app.api('POST', '/api/v1/tenants/alpha/api-keys', { name: 'limited' });
      expect(dup.status).toBe(409);
      expect(dup.headers.get('content-type')).toMatch(/application\/problem\+json/);
      // the same name in another tenant is another key
      expect((await app.api('POST', '/api/v1/tenants/bravo/api-keys', { name: 'limited' })).status).toBe(201);
    });

    it('answers 401 without a token, with a bad one, and before looking at the body', async () => {
      const none = await app.api('GET', '/api/v1/tenants', undefined, null);
      expect(none.status).toBe(401);
      expect(none.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect((await app.api('GET', '/api/v1/tenants', undefined, 'mqk_not-a-key')).status).toBe(401);
      expect((await app.api('POST', '/api/v1/tenants/alpha/api-keys', { bogus: 1 }, 'wrong')).status).toBe(401);
    });

    it('pages through keys in a stable order', async () => {
      await app.createTenant('paging');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await app.api('POST', '/api/v1/tenants/paging/api-keys', { name: `k${i}` })).body.id);
      const seen: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page: any = await app.api('GET', `/api/v1/tenants/paging/api-keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.body.items.map((k: any) => k.id));
        cursor = page.body.nextCursor;
        if (!cursor) break;
      }
      expect(seen).toEqual([...ids].sort());
    });
  });

  describe('sessions', () => {
    it('lists the live sessions of the tenant only, ordered by client id, with their figures', async () => {
      const b = await dev('alpha', 'd1', { clientId: 'b-client', keepalive: 42 });
      const a = await dev('alpha', 'd2', { clientId: 'a-client', clean: false });
      const c = await dev('alpha', 'd1', { clientId: 'c-client', protocolVersion: 3, protocolId: 'MQIsdp' });
      await dev('bravo', 'd1', { clientId: 'a-bravo' });
      await b.subscribe(['s/1', 's/2'], 1);
      await a.publish('s/1', 'hello', { qos: 1 });
      await b.next((m) => m.payload === 'hello');

      const res = await app.api('GET', '/api/v1/tenants/alpha/sessions');
      expect(res.status).toBe(200);
      expect(res.body.items.map((s: any) => s.clientId)).toEqual(['a-client', 'b-client', 'c-client']);
      expect(res.body.nextCursor).toBeNull();
      const [sa, sb, sc] = res.body.items;
      expect(sb).toMatchObject({
        clientId: 'b-client',
        device: 'd1',
        node: app.config.nodeId,
        remoteAddress: expect.stringContaining('127.0.0.1'),
        cleanSession: true,
        keepalive: 42,
        protocolVersion: 4,
        subscriptions: 2,
        messagesIn: 0,
        messagesOut: 1,
      });
      expect(Date.parse(sb.connectedAt)).toBeLessThanOrEqual(Date.now());
      expect(sa).toMatchObject({ device: 'd2', cleanSession: false, messagesIn: 1, subscriptions: 0 });
      expect(sc.protocolVersion).toBe(3);
      expect(c.client.connected).toBe(true);
    });

    it('filters by device and client-id prefix, and pages with a cursor', async () => {
      // a tenant of its own: sessions other tests just closed may not be gone yet
      await app.createTenant('sessions-page');
      for (const name of ['d1', 'd2']) await app.createDevice('sessions-page', name, pw);
      for (const id of ['p-3', 'p-1', 'q-1', 'p-2']) await dev('sessions-page', id === 'q-1' ? 'd2' : 'd1', { clientId: id });
      const byDevice = await app.api('GET', '/api/v1/tenants/sessions-page/sessions?device=d2');
      expect(byDevice.body.items.map((s: any) => s.clientId)).toEqual(['q-1']);
      const byPrefix = await app.api('GET', `/api/v1/tenants/sessions-page/sessions?clientIdPrefix=p-`);
      expect(byPrefix.body.items.map((s: any) => s.clientId)).toEqual(['p-1', 'p-2', 'p-3']);

      const seen: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page: any = await app.api('GET', `/api/v1/tenants/sessions-page/sessions?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
        seen.push(...page.body.items.map((s: any) => s.clientId));
        cursor = page.body.nextCursor;
        if (!cursor) break;
      }
      expect(seen).toEqual(['p-1', 'p-2', 'p-3', 'q-1']);
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions?device=no/such')).status).toBe(400);
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions?limit=0')).body.errors[0].field).toBe('limit');
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions?cursor=garbage!')).body.errors[0].field).toBe('cursor');
    });

    it('shows one session with its subscriptions as the device named them', async () => {
      const c = await dev('alpha', 'd1', { clientId: 'with/slash and space' });
      await c.subscribe(['x/+/y', '$SYS/#'], 1);
      await c.subscribe('a/#', 2);
      const res = await app.api('GET', `/api/v1/tenants/alpha/sessions/${enc('with/slash and space')}`);
      expect(res.status).toBe(200);
      expect(res.body.clientId).toBe('with/slash and space');
      expect(res.body.subscriptions).toBe(3);
      expect(res.body.subscriptionList).toEqual([
        { topic: '$SYS/#', qos: 1 },
        { topic: 'a/#', qos: 2 },
        { topic: 'x/+/y', qos: 1 },
      ]);
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions/nobody')).status).toBe(404);
      // the same client id in another tenant is not this session
      expect((await app.api('GET', `/api/v1/tenants/bravo/sessions/${enc('with/slash and space')}`)).status).toBe(404);
    });

    it('kicks a session at once', async () => {
      const victim = await dev('alpha', 'd1', { clientId: 'victim' });
      const same = await dev('bravo', 'd1', { clientId: 'victim' });
      const closed = closedByServer(victim);
      expect((await app.api('DELETE', '/api/v1/tenants/alpha/sessions/victim')).status).toBe(204);
      // gone from the API as soon as the DELETE has answered
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions/victim')).status).toBe(404);
      expect((await app.api('GET', '/api/v1/tenants/alpha/sessions')).body.items.map((s: any) => s.clientId)).not.toContain('victim');
      await closed;
      expect(same.client.connected).toBe(true);
      expect((await app.api('GET', '/api/v1/tenants/bravo/sessions/victim')).status).toBe(200);
      expect((await app.api('DELETE', '/api/v1/tenants/alpha/sessions/victim')).status).toBe(404);
    });
  });

  describe('publish over REST', () => {
    it('delivers to MQTT subscribers of the tenant as a device publish would, utf8 and base64, at the QoS asked', async () => {
      const sub = await dev('alpha', 'd1');
      const spy = await dev('bravo', 'd1');
      await sub.subscribe('rest/#', 2);
      await spy.subscribe(['#', 'rest/#'], 2);
      const text = await app.api('POST', '/api/v1/tenants/alpha/publish', { topic: 'rest/text', payload: 'héllo', qos: 1 });
      expect(text.status).toBe(202);
      expect(await sub.next((m) => m.topic === 'rest/text')).toMatchObject({ payload: 'héllo', qos: 1, retain: false });
      const binary = Buffer.from([0xde, 0xad, 0xbe, 0xef]);
      const got = new Promise<Buffer>((resolve) =>
        sub.client.on('message', (topic, payload) => topic === 'rest/bin' && resolve(payload)),
      );
      const b64 = await app.api('POST', '/api/v1/tenants/alpha/publish', {
        topic: 'rest/bin',
        payload: binary.toString('base64'),
        encoding: 'base64',
        qos: 2,
      });
      expect(b64.status).toBe(202);
      expect((await got).equals(binary)).toBe(true);
      // default QoS 0
      await app.api('POST', '/api/v1/tenants/alpha/publish', { topic: 'rest/q0', payload: 'zero' });
      expect((await sub.next((m) => m.topic === 'rest/q0')).qos).toBe(0);
      // never to another tenant
      const bpub = await dev('bravo', 'd2');
      const seen = await spy.drain(bpub, 'rest/marker');
      expect(seen.filter((m) => m.topic.startsWith('rest/') && m.topic !== 'rest/marker')).toEqual([]);
    });

    it('validates the topic like an MQTT topic name, the payload encoding, and the tenant payload limit', async () => {
      const bad = async (body: unknown) => {
        const r = await app.api('POST', '/api/v1/tenants/alpha/publish', body);
        return [r.status, r.body.errors?.[0]?.field];
      };
      expect(await bad({ topic: 'a/+', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: 'a/#', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: '', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: '$SYS/broker/x', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: 'nul\u0000', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: 'a/'.repeat(100) + 'z', payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ payload: 'x' })).toEqual([400, 'topic']);
      expect(await bad({ topic: 't', payload: 'not base64!', encoding: 'base64' })).toEqual([400, 'payload']);
      expect(await bad({ topic: 't', payload: 'x', encoding: 'hex' })).toEqual([400, 'encoding']);
      expect(await bad({ topic: 't', payload: 'x', qos: 3 })).toEqual([400, 'qos']);
      expect(await bad({ topic: 't', payload: 'x', retain: 'yes' })).toEqual([400, 'retain']);

      await app.createTenant('small', { limits: { maxPayloadBytes: 8 } });
      expect((await app.api('POST', '/api/v1/tenants/small/publish', { topic: 't', payload: '12345678' })).status).toBe(202);
      const big = await app.api('POST', '/api/v1/tenants/small/publish', { topic: 't', payload: '123456789' });
      expect(big.status).toBe(413);
      expect(big.body.errors[0].field).toBe('payload');
    });
  });

  describe('retained messages', () => {
    it('lists, reads and deletes retained messages of the tenant, by MQTT filter, with paging', async () => {
      const pub = await dev('alpha', 'd1');
      await pub.publish('ret/a', 'alpha-a', { qos: 1, retain: true });
      await pub.publish('ret/b/c', 'alpha-bc', { qos: 0, retain: true });
      await pub.publish('other', 'alpha-other', { qos: 1, retain: true });
      expect(
        (await app.api('POST', '/api/v1/tenants/alpha/publish', { topic: 'ret/bin', payload: '/wA=', encoding: 'base64', retain: true, qos: 1 })).status,
      ).toBe(202);
      expect((await app.api('POST', '/api/v1/tenants/alpha/publish', { topic: '$app/state', payload: 'dollar', retain: true })).status).toBe(202);
      const bpub = await dev('bravo', 'd1');
      await bpub.publish('ret/a', 'bravo-a', { qos: 1, retain: true });

      const all = await app.api('GET', '/api/v1/tenants/alpha/retained');
      expect(all.status).toBe(200);
      // `#` does not match `$` topics ([MQTT-4.7.2-1]), and bravo's never appear
      expect(all.body.items).toEqual([
        { topic: 'other', payload: 'alpha-other', encoding: 'utf8', qos: 1 },
        { topic: 'ret/a', payload: 'alpha-a', encoding: 'utf8', qos: 1 },
        { topic: 'ret/b/c', payload: 'alpha-bc', encoding: 'utf8', qos: 0 },
        { topic: 'ret/bin', payload: '/wA=', encoding: 'base64', qos: 1 },
      ]);
      const filtered = await app.api('GET', `/api/v1/tenants/alpha/retained?filter=${enc('ret/+')}`);
      expect(filtered.body.items.map((m: any) => m.topic)).toEqual(['ret/a', 'ret/bin']);
      const dollar = await app.api('GET', `/api/v1/tenants/alpha/retained?filter=${enc('$app/#')}`);
      expect(dollar.body.items).toEqual([{ topic: '$app/state', payload: 'dollar', encoding: 'utf8', qos: 0 }]);
      expect((await app.api('GET', `/api/v1/tenants/alpha/retained?filter=${enc('a/#/b')}`)).body.errors[0].field).toBe('filter');

      const pages: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page: any = await app.api('GET', `/api/v1/tenants/alpha/retained?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
        pages.push(page.body.items.map((m: any) => m.topic).join(','));
        cursor = page.body.nextCursor;
        if (!cursor) break;
      }
      expect(pages).toEqual(['other,ret/a,ret/b/c', 'ret/bin']);

      // one topic, percent-encoded as a single path segment
      const one = await app.api('GET', `/api/v1/tenants/alpha/retained/${enc('ret/b/c')}`);
      expect(one.body).toEqual({ topic: 'ret/b/c', payload: 'alpha-bc', encoding: 'utf8', qos: 0 });
      expect((await app.api('GET', `/api/v1/tenants/alpha/retained/${enc('ret/b')}`)).status).toBe(404);
      expect((await app.api('GET', `/api/v1/tenants/alpha/retained/${enc('ret/+')}`)).body.errors[0].field).toBe('topic');

      expect((await app.api('DELETE', `/api/v1/tenants/alpha/retained/${enc('ret/a')}`)).status).toBe(204);
      expect((await app.api('GET', `/api/v1/tenants/alpha/retained/${enc('ret/a')}`)).status).toBe(404);
      expect((await app.api('DELETE', `/api/v1/tenants/alpha/retained/${enc('ret/a')}`)).status).toBe(404);
      // bravo's message on the same topic is untouched
      expect((await app.api('GET', `/api/v1/tenants/bravo/retained/${enc('ret/a')}`)).body.payload).toBe('bravo-a');
      // and a new subscriber gets what is left
      const late = await dev('alpha', 'd2');
      await late.subscribe('ret/#');
      await late.next((m) => m.topic === 'ret/b/c');
      await late.next((m) => m.topic === 'ret/bin');
      await late.drain(pub, 'ret/marker');
      expect(late.received.filter((m) => m.retain).map((m) => m.topic).sort()).toEqual(['ret/b/c', 'ret/bin']);
    });

    it('are removed with their tenant', async () => {
      await app.createTenant('doomed');
      await app.api('POST', '/api/v1/tenants/doomed/publish', { topic: 'keep/me', payload: 'x', retain: true });
      await app.api('POST', '/api/v1/tenants/doomed/publish', { topic: '$state/me', payload: 'y', retain: true });
      const { id } = await app.running.app.get(PrismaService).db.tenant.findUniqueOrThrow({ where: { slug: 'doomed' } });
      const routed = async () => {
        const mp = new Mountpoint(id);
        const persistence = (app.running.app.get(BrokerService).aedes as any).persistence;
        const topics: string[] = [];
        for await (const p of persistence.createRetainedStreamCombi([mp.prefix + '#', mp.dollarPrefix + '#'])) topics.push(p.topic);
        return topics.sort();
      };
      expect(await routed()).toEqual([`$${id}/$state/me`, `${id}/keep/me`]);
      expect((await app.api('DELETE', '/api/v1/tenants/doomed')).status).toBe(204);
      expect(await routed()).toEqual([]);
    });
  });
});
