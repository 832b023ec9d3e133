import { BCRYPT_CONCURRENCY, comparePassword, hashPassword } from '../../src/common/bcrypt-pool';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { connect, connectRefused, TestClient } from '../helpers/mqtt';
import { parsePrometheus, Scrape } from '../helpers/prometheus';

/** GET /metrics against a scripted scenario, the per-tenant $SYS topics, probes and request ids. */
describe(`monitoring (${databaseKind()})`, () => {
  let app: TestApp;
  const open: TestClient[] = [];
  const pw = 'monitoring-password';

  const dev = async (slug: string, name: string) => {
    const c = await connect(app.mqttPort, { username: `${slug}:${name}`, password: pw });
    open.push(c);
    return c;
  };

  const scrape = async (): Promise<Scrape> => {
    const res = await fetch(`${app.http}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    return parsePrometheus(await res.text());
  };

  beforeAll(async () => {
    app = await startTestApp({ SYS_INTERVAL: '1' });
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('counts a scripted scenario per tenant, and for the node', async () => {
    await app.createTenant('mon-a');
    await app.createDevice('mon-a', 'd1', pw);
    await app.createDevice('mon-a', 'd2', pw);
    await app.allow('mon-a', { topic: 'a/#' });
    await app.createTenant('mon-b');
    await app.createDevice('mon-b', 'd1', pw);
    await app.allow('mon-b');

    const sub = await dev('mon-a', 'd1');
    await sub.subscribe('a/#', 0);
    const pub = await dev('mon-a', 'd2');
    for (let i = 0; i < 3; i++) await pub.publish('a/x', 'hello'); // 3 x 5 bytes
    await pub.publish('a/r', 'abc', { retain: true }); // 3 bytes, retained
    await pub.publish('b/denied', 'nope'); // ACL: dropped
    expect(await connectRefused(app.mqttPort, { username: 'mon-a:d1', password: 'wrong-password' })).toBe(4);
    await dev('mon-b', 'd1');
    await sub.next((m) => m.topic === 'a/r');
    expect(sub.received).toHaveLength(4);

    const m = await scrape();
    const a = { tenant: 'mon-a' };
    const b = { tenant: 'mon-b' };
    expect(m.value('mqtt_connections', a)).toBe(2);
    expect(m.value('mqtt_connects_total', { ...a, result: 'accepted' })).toBe(2);
    expect(m.value('mqtt_connects_total', { ...a, result: 'bad-credentials' })).toBe(1);
    expect(m.value('mqtt_messages_received_total', a)).toBe(4);
    expect(m.value('mqtt_messages_sent_total', a)).toBe(4);
    expect(m.value('mqtt_bytes_received_total', a)).toBe(18);
    expect(m.value('mqtt_bytes_sent_total', a)).toBe(18);
    expect(m.value('mqtt_messages_dropped_total', { ...a, reason: 'acl-denied' })).toBe(1);
    expect(m.value('mqtt_subscriptions', a)).toBe(1);
    expect(m.value('mqtt_retained_messages', a)).toBe(1);
    // the other tenant's figures are its own
    expect(m.value('mqtt_connections', b)).toBe(1);
    expect(m.value('mqtt_messages_received_total', b)).toBe(0);
    expect(m.value('mqtt_messages_dropped_total', { ...b, reason: 'acl-denied' })).toBeUndefined();

    // node totals are the sums over the tenants
    const sum = (name: string) => m.samples(name).reduce((n, s) => n + s.value, 0);
    for (const name of ['connections', 'messages_received_total', 'messages_sent_total', 'bytes_received_total', 'subscriptions']) {
      expect(m.value(`mqtt_node_${name}`)).toBe(sum(`mqtt_${name}`));
    }
    expect(m.value('mqtt_node_connects_total', { result: 'bad-credentials' })).toBeGreaterThanOrEqual(1);

    // REST, bcrypt and Node's own metrics
    expect(m.value('http_requests_total', { method: 'POST', route: '/api/v1/tenants', status: '201' })).toBeGreaterThanOrEqual(2);
    expect(m.value('http_request_duration_seconds_count', { method: 'POST', route: '/api/v1/tenants/:slug/devices' })).toBeGreaterThanOrEqual(3);
    expect(m.value('mqtt_auth_bcrypt_comparisons_total')).toBeGreaterThan(0);
    expect(m.value('nodejs_eventloop_lag_seconds')).toBeGreaterThanOrEqual(0);
    expect(m.value('process_resident_memory_bytes')).toBeGreaterThan(0);
  });

  it('shows password checks waiting for a core', async () => {
    // cost 10: each comparison holds its core ~50 ms, long enough to scrape the queue behind them
    const hash = await hashPassword('x', 10);
    expect((await scrape()).value('mqtt_auth_bcrypt_queued')).toBe(0);
    const checks = Array.from({ length: 3 * BCRYPT_CONCURRENCY }, () => comparePassword('x', hash));
    expect((await scrape()).value('mqtt_auth_bcrypt_queued')).toBeGreaterThan(0);
    await expect(Promise.all(checks)).resolves.toEqual(checks.map(() => true));
    expect((await scrape()).value('mqtt_auth_bcrypt_queued')).toBe(0);
  });

  it("publishes each tenant's own figures on its $SYS topics, readable without an ACL rule", async () => {
    for (const slug of ['sys-a', 'sys-b']) {
      await app.createTenant(slug);
      for (const name of ['d1', 'd2', 'd3']) await app.createDevice(slug, name, pw);
      await app.allow(slug, { topic: 'data/#' }); // nothing about $SYS
    }
    // sys-a: 3 clients, 2 messages published; sys-b: 1 client, 5 messages
    const watchA = await dev('sys-a', 'd1');
    await watchA.subscribe('$SYS/#', 0);
    const a2 = await dev('sys-a', 'd2');
    await dev('sys-a', 'd3');
    for (let i = 0; i < 2; i++) await a2.publish('data/x', 'a');
    const watchB = await dev('sys-b', 'd1');
    await watchB.subscribe('$SYS/#', 0);
    for (let i = 0; i < 5; i++) await watchB.publish('data/y', 'b');

    const figure = (c: TestClient, topic: string, value: string) => c.next((x) => x.topic === topic && x.payload === value, 5000);
    await figure(watchA, '$SYS/broker/clients/connected', '3');
    await figure(watchA, '$SYS/broker/messages/received', '2');
    await figure(watchA, '$SYS/broker/subscriptions/count', '1');
    await figure(watchB, '$SYS/broker/clients/connected', '1');
    await figure(watchB, '$SYS/broker/messages/received', '5');
    const sentA = await watchA.next((x) => x.topic === '$SYS/broker/messages/sent');
    expect(Number(sentA.payload)).toBeGreaterThanOrEqual(0);

    // every figure a device saw is its own tenant's: a $SYS tick may fall between two of the
    // connects or publishes above, so smaller figures may come first, never bigger ones (the
    // other tenant's counts added in would be: 4 clients, 7 messages)
    const seen = (c: TestClient, topic: string) => c.received.filter((x) => x.topic === topic).map((x) => Number(x.payload));
    expect(Math.max(...seen(watchA, '$SYS/broker/clients/connected'))).toBe(3);
    expect(Math.max(...seen(watchA, '$SYS/broker/messages/received'))).toBe(2);
    expect(Math.max(...seen(watchB, '$SYS/broker/clients/connected'))).toBe(1);
    expect(Math.max(...seen(watchB, '$SYS/broker/messages/received'))).toBe(5);
    expect(watchA.received.every((x) => x.topic.startsWith('$SYS/broker/'))).toBe(true);

    // retained: a device subscribing later gets the last figures at once
    const late = await dev('sys-a', 'd2');
    await late.subscribe('$SYS/broker/clients/connected');
    expect(await late.next()).toMatchObject({ topic: '$SYS/broker/clients/connected', retain: true });
  });

  it('answers the probes, and gives every request an id it echoes', async () => {
    const live = await fetch(`${app.http}/health/live`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${app.http}/health/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ok', checks: { database: 'ok', listeners: 'ok' } });

    const given = await fetch(`${app.http}/health/live`, { headers: { 'x-request-id': 'trace-123' } });
    expect(given.headers.get('x-request-id')).toBe('trace-123');
    const made = await fetch(`${app.http}/health/live`, { headers: { 'x-request-id': 'not a token; "quoted"' } });
    expect(made.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });
});
