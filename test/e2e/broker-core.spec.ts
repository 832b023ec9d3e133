import { closedByServer, connect, connectRefused, mosquittoSub, payloadLines, rawConnack, run, subackCodes, TestClient } from '../helpers/mqtt';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';

/**
 * The broker core through real sockets: mqtt.js and the real mosquitto clients against the
 * running service, tenants and devices created over REST.
 */
describe(`broker core (${databaseKind()})`, () => {
  let app: TestApp;
  const open: TestClient[] = [];
  const pw = 'correct-horse-battery';

  const dev = async (slug: string, name: string, opts: Parameters<typeof connect>[1] = {}) => {
    const c = await connect(app.mqttPort, { username: `${slug}:${name}`, password: pw, ...opts });
    open.push(c);
    return c;
  };

  beforeAll(async () => {
    app = await startTestApp();
    for (const slug of ['alpha', 'bravo']) {
      await app.createTenant(slug);
      for (const name of ['d1', 'd2', 'd3']) await app.createDevice(slug, name, pw);
      await app.allow(slug);
    }
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
  });

  it("runs the tutorial's flow with mosquitto_sub and mosquitto_pub", async () => {
    await app.createTenant('tutorial');
    const created = await app.api('POST', '/api/v1/tenants/tutorial/devices', { name: 'laptop' });
    expect(created.status).toBe(201);
    const password = created.body.password as string;
    expect(password).toEqual(expect.any(String));
    await app.allow('tutorial', { topic: 'swa_news' });
    const common = ['-h', '127.0.0.1', '-p', String(app.mqttPort), '-u', 'tutorial:laptop', '-P', password];
    const sub = await mosquittoSub([...common, '-t', 'swa_news', '-C', '1']);
    const pub = await run('mosquitto_pub', [...common, '-t', 'swa_news', '-m', 'Hello Protocol']);
    expect(pub.code).toBe(0);
    const out = await sub.done;
    expect(out.code).toBe(0);
    expect(payloadLines(out.stdout)).toEqual(['Hello Protocol']);
  });

  it('refuses a wrong password, an unknown tenant and an unknown device alike', async () => {
    const codes = await Promise.all([
      connectRefused(app.mqttPort, { username: 'alpha:d1', password: 'wrong-password' }),
      connectRefused(app.mqttPort, { username: 'nosuchtenant:d1', password: pw }),
      connectRefused(app.mqttPort, { username: 'alpha:nosuchdevice', password: pw }),
      connectRefused(app.mqttPort, { username: 'no-separator', password: pw }),
      connectRefused(app.mqttPort, { username: 'alpha:d1' }),
    ]);
    expect(codes).toEqual([4, 4, 4, 4, 4]);
    // no username: anonymous, and ANONYMOUS_TENANT is not set
    expect(await connectRefused(app.mqttPort, {})).toBe(5);
    const cli = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(app.mqttPort), '-u', 'alpha:d1', '-P', 'nope', '-t', 'x', '-m', 'y']);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain('bad user name or password');
  });

  it('delivers QoS 0, 1 and 2 inside a tenant, with the topic the device used', async () => {
    const sub = await dev('alpha', 'd1');
    const pub = await dev('alpha', 'd2');
    await sub.subscribe('q/#', 2);
    for (const qos of [0, 1, 2] as const) await pub.publish(`q/${qos}`, `m${qos}`, { qos });
    for (const qos of [0, 1, 2] as const) {
      const m = await sub.next((x) => x.payload === `m${qos}`);
      expect(m).toMatchObject({ topic: `q/${qos}`, qos });
    }
  });

  it('works over WebSocket on WS_PORT at /mqtt', async () => {
    const ws = await connect(app.wsPort, { username: 'alpha:d1', password: pw }, `ws://127.0.0.1:${app.wsPort}/mqtt`);
    open.push(ws);
    const tcp = await dev('alpha', 'd2');
    await ws.subscribe('ws/test');
    await tcp.publish('ws/test', 'over-ws');
    expect(await ws.next()).toMatchObject({ topic: 'ws/test', payload: 'over-ws' });
  });

  describe('isolation between tenants', () => {
    it('keeps live messages inside the tenant whatever the filter: #, +/#, $SYS/#, at every QoS', async () => {
      const spy = await dev('bravo', 'd1');
      await spy.subscribe(['#', '+/#', '$SYS/#', 'iso/+'], 2);
      const mate = await dev('bravo', 'd2');
      await mate.subscribe('iso/#', 2);
      const pub = await dev('alpha', 'd1');
      for (const qos of [0, 1, 2] as const) await pub.publish('iso/x', `alpha-${qos}`, { qos });
      await pub.publish('$SYS/fake', 'alpha-sys', { qos: 1 });
      const seen = await spy.drain(mate, 'iso/marker');
      expect(seen.filter((m) => m.payload.startsWith('alpha'))).toEqual([]);
      // and the alpha messages do reach alpha's own subscriber
      const own = await dev('alpha', 'd2');
      await own.subscribe('iso/#', 2);
      await pub.publish('iso/x', 'alpha-again', { qos: 1 });
      expect((await own.next((m) => m.payload === 'alpha-again')).topic).toBe('iso/x');
    });

    it('keeps retained messages inside the tenant', async () => {
      const pub = await dev('alpha', 'd1');
      await pub.publish('ret/a', 'alpha-retained', { qos: 1, retain: true });
      const ownSub = await dev('alpha', 'd2');
      await ownSub.subscribe('ret/#');
      expect(await ownSub.next()).toMatchObject({ topic: 'ret/a', payload: 'alpha-retained', retain: true });

      const spy = await dev('bravo', 'd1');
      const bpub = await dev('bravo', 'd2');
      await spy.subscribe(['#', 'ret/#', '+/+']);
      const seen = await spy.drain(bpub, 'marker/ret');
      expect(seen.filter((m) => m.payload.startsWith('alpha'))).toEqual([]);
      // and at the store: a replay may interleave with the marker, the store listing cannot
      const listed = await app.api('GET', `/api/v1/tenants/bravo/retained?filter=${encodeURIComponent('#')}`);
      expect(listed.status).toBe(200);
      expect(listed.body.items.filter((m: { payload: string }) => m.payload.startsWith('alpha'))).toEqual([]);
      const own = await app.api('GET', `/api/v1/tenants/alpha/retained?filter=${encodeURIComponent('ret/#')}`);
      expect(own.body.items).toEqual([expect.objectContaining({ topic: 'ret/a', payload: 'alpha-retained' })]);
    });

    it('keeps will messages inside the tenant', async () => {
      const spy = await dev('bravo', 'd1');
      await spy.subscribe(['#', 'will/#']);
      const own = await dev('alpha', 'd2');
      await own.subscribe('will/#');
      const dying = await dev('alpha', 'd1', { will: { topic: 'will/d1', payload: Buffer.from('alpha-will'), qos: 1, retain: false } });
      dying.client.stream.destroy(); // unclean: the will is published
      expect(await own.next((m) => m.payload === 'alpha-will')).toMatchObject({ topic: 'will/d1' });
      const bpub = await dev('bravo', 'd2');
      const seen = await spy.drain(bpub, 'marker/will');
      expect(seen.filter((m) => m.payload.startsWith('alpha'))).toEqual([]);
    });

    it('gives the same client id in two tenants two sessions that both stay connected', async () => {
      const a = await dev('alpha', 'd1', { clientId: 'shared-id' });
      const b = await dev('bravo', 'd1', { clientId: 'shared-id' });
      await a.subscribe('same/t');
      await b.subscribe('same/t');
      const pa = await dev('alpha', 'd2');
      const pb = await dev('bravo', 'd2');
      await pa.publish('same/t', 'to-a');
      await pb.publish('same/t', 'to-b');
      expect((await a.next()).payload).toBe('to-a');
      expect((await b.next()).payload).toBe('to-b');
      expect(a.client.connected && b.client.connected).toBe(true);
      expect(a.received.map((m) => m.payload)).toEqual(['to-a']);
    });

    it('takes a session over inside one tenant', async () => {
      const first = await dev('alpha', 'd1', { clientId: 'takeover-me' });
      const closed = closedByServer(first);
      await dev('alpha', 'd2', { clientId: 'takeover-me' });
      await closed;
    });
  });

  describe('persistent sessions', () => {
    it('queues QoS 1 while offline and redelivers on reconnect, without the internal prefix', async () => {
      const opts = { clientId: 'persistent-1', clean: false } as const;
      const first = await dev('alpha', 'd1', opts);
      await first.subscribe('persist/#', 1);
      await first.end();
      const pub = await dev('alpha', 'd2');
      await pub.publish('persist/x', 'while-offline', { qos: 1 });
      const again = await dev('alpha', 'd1', opts);
      expect(again.client.connected).toBe(true);
      const m = await again.next();
      expect(m).toMatchObject({ topic: 'persist/x', payload: 'while-offline', qos: 1 });
      // the same client id in the other tenant has no session
      const other = await dev('bravo', 'd1', opts);
      const bpub = await dev('bravo', 'd2');
      await other.subscribe('marker/p');
      expect(await other.drain(bpub, 'marker/p')).toEqual([]);
    });

    it('refuses an empty client id without a clean session (CONNACK 2) and assigns one with', async () => {
      expect(await rawConnack(app.mqttPort, { username: 'alpha:d1', password: pw, clientId: '', clean: false })).toBe(2);
      const anon = await dev('alpha', 'd1', { clientId: '' });
      await anon.subscribe('empty/id');
      await anon.publish('empty/id', 'self');
      expect((await anon.next()).payload).toBe('self');
    });
  });

  describe('ACLs', () => {
    beforeAll(async () => {
      await app.createTenant('acl');
      for (const name of ['s1', 's2', 'admin']) await app.createDevice('acl', name, pw);
      await app.allow('acl', { topic: 'sensors/${device}/#' });
      await app.allow('acl', { action: 'subscribe', topic: 'cmd/${clientid}' });
      await app.allow('acl', { topic: 'public/#' });
      await app.allow('acl', { topic: 'public/secret/#', permission: 'deny' });
      await app.allow('acl', { device: 'admin', topic: '#', priority: 5 });
      await app.allow('acl', { device: 'admin', topic: 'forbidden/#', permission: 'deny', priority: 5 });
    });

    it('grants a device its own topics through ${device}, and not its neighbours', async () => {
      const s1 = await dev('acl', 's1');
      expect(await subackCodes(s1, ['sensors/s1/#', 'sensors/s2/#', 'sensors/#'], 1)).toEqual([1, 128, 128]);
    });

    it('grants subscriptions through ${clientid}', async () => {
      const s1 = await dev('acl', 's1', { clientId: 'cid-7' });
      expect(await subackCodes(s1, ['cmd/cid-7', 'cmd/cid-8'])).toEqual([0, 128]);
    });

    it('drops a denied publish, acknowledges it and keeps the connection', async () => {
      const admin = await dev('acl', 'admin');
      await admin.subscribe('sensors/#');
      const s1 = await dev('acl', 's1');
      await s1.publish('sensors/s2/temp', 'spoofed', { qos: 1 }); // PUBACK arrives: publishAsync resolves
      await s1.publish('sensors/s1/temp', 'genuine', { qos: 1 });
      const m = await admin.next();
      expect(m).toMatchObject({ topic: 'sensors/s1/temp', payload: 'genuine' });
      expect(admin.received.map((x) => x.payload)).not.toContain('spoofed');
      expect(s1.client.connected).toBe(true);
    });

    it('lets deny win at equal priority and the higher priority win otherwise', async () => {
      const s1 = await dev('acl', 's1');
      expect(await subackCodes(s1, ['public/#', 'public/secret/x'])).toEqual([0, 128]);
      // public/# is allowed but partly denied: messages under public/secret are filtered
      const admin = await dev('acl', 'admin');
      await admin.publish('public/secret/x', 'hidden');
      await admin.publish('public/news', 'visible');
      expect((await s1.next()).payload).toBe('visible');
      expect(s1.received.map((m) => m.payload)).toEqual(['visible']);
      // admin: '#' allowed at priority 5 but forbidden/# denied at the same priority
      expect(await subackCodes(admin, ['anything/#', 'forbidden/x'])).toEqual([0, 128]);
    });

    it('never lets a device publish to $SYS', async () => {
      const admin = await dev('acl', 'admin');
      await admin.subscribe('$SYS/#');
      await admin.publish('$SYS/broker/clients/connected', '999');
      const probe = await dev('acl', 'admin');
      await admin.subscribe('public/marker');
      expect((await admin.drain(probe, 'public/marker')).filter((m) => m.payload === '999')).toEqual([]);
    });

    it('applies rule changes to the next packet and drops subscriptions no longer allowed', async () => {
      await app.createTenant('live-acl');
      await app.createDevice('live-acl', 'x', pw);
      const ruleId = await app.allow('live-acl', { topic: 'feed/#' });
      const c = await dev('live-acl', 'x');
      await c.subscribe('feed/a');
      expect(await subackCodes(c, 'other/a')).toEqual([128]);
      await app.allow('live-acl', { topic: 'other/#' });
      expect(await subackCodes(c, 'other/a')).toEqual([0]);
      const kicked = closedByServer(c);
      expect((await app.api('DELETE', `/api/v1/tenants/live-acl/acls/${ruleId}`)).status).toBe(204);
      await kicked;
    });
  });

  describe('device lifecycle', () => {
    it('disconnects and refuses a disabled device, and accepts it again once enabled', async () => {
      await app.createDevice('alpha', 'lifecycle', pw);
      const c = await dev('alpha', 'lifecycle');
      const closed = closedByServer(c);
      expect((await app.api('PATCH', '/api/v1/tenants/alpha/devices/lifecycle', { enabled: false })).status).toBe(200);
      await closed;
      expect(await connectRefused(app.mqttPort, { username: 'alpha:lifecycle', password: pw })).toBe(4);
      await app.api('PATCH', '/api/v1/tenants/alpha/devices/lifecycle', { enabled: true });
      expect((await dev('alpha', 'lifecycle')).client.connected).toBe(true);
    });

    it('disconnects on password rotation; the old password stops working, the new one works', async () => {
      await app.createDevice('alpha', 'rotating', pw);
      const c = await dev('alpha', 'rotating');
      const closed = closedByServer(c);
      const res = await app.api('POST', '/api/v1/tenants/alpha/devices/rotating/password');
      expect(res.status).toBe(200);
      await closed;
      expect(await connectRefused(app.mqttPort, { username: 'alpha:rotating', password: pw })).toBe(4);
      const fresh = await connect(app.mqttPort, { username: 'alpha:rotating', password: res.body.password });
      open.push(fresh);
      expect(fresh.client.connected).toBe(true);
    });

    it('disconnects a deleted device and refuses it afterwards', async () => {
      await app.createDevice('alpha', 'doomed', pw);
      const c = await dev('alpha', 'doomed');
      const closed = closedByServer(c);
      expect((await app.api('DELETE', '/api/v1/tenants/alpha/devices/doomed')).status).toBe(204);
      await closed;
      expect(await connectRefused(app.mqttPort, { username: 'alpha:doomed', password: pw })).toBe(4);
    });

    it('disconnects the sessions of a deleted tenant; a re-created slug inherits nothing', async () => {
      await app.createTenant('ephemeral');
      await app.createDevice('ephemeral', 'd', pw);
      await app.allow('ephemeral');
      const c = await dev('ephemeral', 'd', { clientId: 'eph', clean: false });
      await c.subscribe('keep/#');
      await c.publish('keep/r', 'old-retained', { retain: true });
      const closed = closedByServer(c);
      expect((await app.api('DELETE', '/api/v1/tenants/ephemeral')).status).toBe(204);
      await closed;
      await app.createTenant('ephemeral');
      await app.createDevice('ephemeral', 'd', pw);
      await app.allow('ephemeral');
      const fresh = await dev('ephemeral', 'd', { clientId: 'eph', clean: false });
      expect(fresh.client.connected).toBe(true);
      const p = await dev('ephemeral', 'd');
      await fresh.subscribe(['keep/#', 'm/#']);
      expect(await fresh.drain(p, 'm/x')).toEqual([]);
    });
  });
});
