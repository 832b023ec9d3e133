import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IClientOptions } from 'mqtt';
import { AppProcess, createPgDatabase } from '../helpers/app-process';
import { closedByServer, connect, connectRefused, subackCodes, TestClient } from '../helpers/mqtt';
import { RedisServer, redisBinary } from '../helpers/redis-server';

/**
 * Scale-out: two nodes of the built service, each its own process, sharing one PostgreSQL
 * database and one real redis-server that this suite starts (and stops, and restarts).
 */
const redisBin = redisBinary();
const pgUrl = process.env.TEST_PG_URL;
const skipReason = !redisBin
  ? 'no redis-server (test/run.sh sets TEST_REDIS_BIN when it is installed: apt-get install redis-server)'
  : !pgUrl
    ? 'no PostgreSQL (TEST_PG_URL unset): the nodes must share one database, which embedded PGlite cannot do'
    : null;
// npm test runs every suite on PGlite first, then again on PostgreSQL: this one runs in the latter
const laterPass = skipReason === null && process.env.TEST_DATABASE === 'pglite';
if (skipReason) console.warn(`\n*** SKIPPED test/e2e/cluster.spec.ts: ${skipReason} ***\n`);
else if (laterPass) console.log('cluster suite: runs in the PostgreSQL pass of npm test');
const maybe = skipReason || laterPass ? describe.skip : describe;

maybe('cluster: nodes sharing Redis and PostgreSQL', () => {
  const token = randomBytes(16).toString('hex');
  const masterKey = randomBytes(32).toString('base64');
  const pw = 'correct-horse-battery';
  let root: string;
  let redis: RedisServer;
  let db: { url: string; drop: () => Promise<void> };
  let a: AppProcess;
  let b: AppProcess;
  let charlieDataRule: string;
  const open: TestClient[] = [];

  const startNode = (name: string) =>
    AppProcess.start(name, {
      NODE_ID: name,
      DATA_DIR: join(root, name),
      ADMIN_TOKEN: token,
      MASTER_KEY: masterKey,
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      AUTH_FAIL_DELAY_MS: '0',
      AUTH_FAIL_MAX_PER_ADDRESS: '1000000',
      AUTH_FAIL_MAX_PER_DEVICE: '1000000',
    });

  const dev = async (node: AppProcess, slug: string, name: string, opts: IClientOptions = {}) => {
    const c = await connect(node.ports.mqtt, { username: `${slug}:${name}`, password: pw, ...opts });
    open.push(c);
    return c;
  };

  const api = async (node: AppProcess, method: string, path: string, body?: unknown, status?: number) => {
    const res = await node.api(method, `/api/v1${path}`, token, body);
    if (status !== undefined && res.status !== status) {
      throw new Error(`${method} ${path} on ${node.name}: expected ${status}, got ${res.status} ${JSON.stringify(res.body)}`);
    }
    return res;
  };

  beforeAll(async () => {
    root = mkdtempSync(join(tmpdir(), 'cluster-test-'));
    redis = await RedisServer.start(redisBin as string);
    db = await createPgDatabase(pgUrl as string);
    // the first node migrates the database and creates the server certificate; the second finds them
    a = await startNode('node-a');
    b = await startNode('node-b');
    for (const slug of ['alpha', 'bravo', 'charlie']) {
      await api(a, 'POST', '/tenants', { slug }, 201);
      for (const name of ['d1', 'd2']) await api(a, 'POST', `/tenants/${slug}/devices`, { name, password: pw }, 201);
    }
    for (const slug of ['alpha', 'bravo']) {
      await api(a, 'POST', `/tenants/${slug}/acls`, { device: null, action: 'all', topic: '#', permission: 'allow' }, 201);
    }
    const rule = await api(b, 'POST', '/tenants/charlie/acls', { device: null, action: 'all', topic: 'data/#', permission: 'allow' }, 201);
    charlieDataRule = (rule.body as { id: string }).id;
  }, 60_000);

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
    for (const node of [a, b]) node?.kill();
    await redis?.destroy();
    await db?.drop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('delivers across nodes at every QoS, inside the tenant only', async () => {
    const sub = await dev(b, 'alpha', 'd1');
    await sub.subscribe('#', 2);
    const spy = await dev(b, 'bravo', 'd1');
    await spy.subscribe(['#', '+/#'], 2);
    const pub = await dev(a, 'alpha', 'd2');
    const bravoPub = await dev(a, 'bravo', 'd2');
    for (const qos of [0, 1, 2] as const) await pub.publish(`news/${qos}`, `alpha-${qos}`, { qos });
    for (const qos of [0, 1, 2] as const) {
      expect(await sub.next((m) => m.payload === `alpha-${qos}`)).toMatchObject({ topic: `news/${qos}`, qos });
    }
    // bravo's subscriber sits on the same node as alpha's: a marker of its own closes the window
    const seen = await spy.drain(bravoPub, 'marker/cross');
    expect(seen.filter((m) => m.payload.startsWith('alpha'))).toEqual([]);
  });

  it('takes a client id over across nodes, and only inside its tenant', async () => {
    const first = await dev(a, 'alpha', 'd1', { clientId: 'roamer' });
    const otherTenant = await dev(b, 'bravo', 'd1', { clientId: 'roamer' });
    // the bravo connection did not end alpha's: a round trip through Redis after it still works
    await first.subscribe('echo/first');
    await first.publish('echo/first', 'still-here');
    await first.next((m) => m.payload === 'still-here');

    const closed = closedByServer(first);
    const second = await dev(b, 'alpha', 'd1', { clientId: 'roamer' });
    await closed;
    expect(second.client.connected).toBe(true);
    await otherTenant.subscribe('echo/other');
    await otherTenant.publish('echo/other', 'bravo-alive');
    await otherTenant.next((m) => m.payload === 'bravo-alive');
  });

  it('lists the sessions of every node, pages across them, and kicks whichever node holds the client', async () => {
    const onA = await dev(a, 'bravo', 'd1', { clientId: 'list-a' });
    await onA.subscribe('x/#', 1);
    const onB = await dev(b, 'bravo', 'd2', { clientId: 'list-b' });

    const all = await api(a, 'GET', '/tenants/bravo/sessions?clientIdPrefix=list-', undefined, 200);
    expect(all.body.items.map((s: { clientId: string; node: string }) => [s.clientId, s.node])).toEqual([
      ['list-a', 'node-a'],
      ['list-b', 'node-b'],
    ]);
    const page1 = await api(b, 'GET', '/tenants/bravo/sessions?clientIdPrefix=list-&limit=1', undefined, 200);
    expect(page1.body.items.map((s: { clientId: string }) => s.clientId)).toEqual(['list-a']);
    const page2 = await api(b, 'GET', `/tenants/bravo/sessions?clientIdPrefix=list-&limit=1&cursor=${page1.body.nextCursor}`, undefined, 200);
    expect(page2.body.items.map((s: { clientId: string }) => s.clientId)).toEqual(['list-b']);
    expect(page2.body.nextCursor).toBeNull();

    const detail = await api(b, 'GET', '/tenants/bravo/sessions/list-a', undefined, 200);
    expect(detail.body).toMatchObject({ clientId: 'list-a', device: 'd1', node: 'node-a', subscriptionList: [{ topic: 'x/#', qos: 1 }] });

    const kicked = closedByServer(onB);
    await api(a, 'DELETE', '/tenants/bravo/sessions/list-b', undefined, 204);
    await kicked;
    await api(a, 'DELETE', '/tenants/bravo/sessions/list-b', undefined, 404);
    expect(onA.client.connected).toBe(true);
  });

  it('applies rule and device changes made on one node to the other before the REST call returns', async () => {
    const watcher = await dev(b, 'charlie', 'd1');
    await watcher.subscribe('data/#', 1);
    // the tenant is cached on B now: only an invalidation from A can change what B allows
    expect(await subackCodes(watcher, 'extra/#', 1)).toEqual([128]);
    await api(a, 'POST', '/tenants/charlie/acls', { device: null, action: 'all', topic: 'extra/#', permission: 'allow' }, 201);
    expect(await subackCodes(watcher, 'extra/#', 1)).toEqual([1]);

    // the rule behind its data/# subscription goes: B disconnects it within a second
    const lost = closedByServer(watcher, 1000);
    await api(a, 'DELETE', `/tenants/charlie/acls/${charlieDataRule}`, undefined, 204);
    await lost;

    // a device disabled on A loses its session on B
    const device = await dev(b, 'charlie', 'd2');
    const disabled = closedByServer(device, 1000);
    await api(a, 'PATCH', '/tenants/charlie/devices/d2', { enabled: false }, 200);
    await disabled;
    expect(await connectRefused(b.ports.mqtt, { username: 'charlie:d2', password: pw })).toBe(4);
  });

  it('keeps queued QoS 1 messages and retained messages through a restart of every node, each exiting 0 on SIGTERM', async () => {
    const durable = await dev(a, 'alpha', 'd1', { clientId: 'durable', clean: false });
    await durable.subscribe('q/#', 1);
    await durable.end();
    const pub = await dev(b, 'alpha', 'd2', { clientId: 'durable-pub' });
    for (let i = 1; i <= 3; i++) await pub.publish(`q/${i}`, `before-${i}`, { qos: 1 });
    await pub.publish('state/lamp', 'on', { qos: 1, retain: true });

    // a connected client sees its connection closed cleanly: no error, just the close
    const bystander = await dev(a, 'alpha', 'd2', { clientId: 'bystander' });
    const errors: Error[] = [];
    bystander.client.on('error', (err) => errors.push(err));
    const closed = closedByServer(bystander, 10_000);

    const exits = await Promise.all([a.stop('SIGTERM'), b.stop('SIGTERM')]);
    for (const exit of exits) {
      expect(exit).toMatchObject({ code: 0, signal: null });
      expect(exit.ms).toBeLessThan(10_000);
    }
    await closed;
    expect(errors).toEqual([]);

    [a, b] = await Promise.all([startNode('node-a'), startNode('node-b')]);
    // same node ids as before the restart: what they store now must not overwrite what is queued
    const pub2 = await dev(b, 'alpha', 'd2', { clientId: 'durable-pub' });
    for (let i = 4; i <= 6; i++) await pub2.publish(`q/${i}`, `after-${i}`, { qos: 1 });

    const back = await dev(a, 'alpha', 'd1', { clientId: 'durable', clean: false });
    const expected = ['before-1', 'before-2', 'before-3', 'after-4', 'after-5', 'after-6'];
    for (const payload of expected) await back.next((m) => m.payload === payload);
    expect(back.received.filter((m) => m.topic.startsWith('q/')).map((m) => m.payload)).toEqual(expected);

    const late = await dev(b, 'alpha', 'd1', { clientId: 'late' });
    await late.subscribe('state/#');
    expect(await late.next()).toMatchObject({ topic: 'state/lamp', payload: 'on', retain: true });
  });

  it('rides out a Redis restart: connections kept, new ones refused meanwhile, nothing stored lost', async () => {
    const sub = await dev(a, 'bravo', 'd1', { clientId: 'steady', clean: false });
    await sub.subscribe('live/#', 1);
    const parked = await dev(b, 'bravo', 'd1', { clientId: 'parked', clean: false });
    await parked.subscribe('live/#', 1);
    await parked.end();
    const pub = await dev(b, 'bravo', 'd2', { clientId: 'steady-pub' });
    await pub.publish('live/1', 'before', { qos: 1 });
    // once the live subscriber has it, the copy for the offline session is stored too
    await sub.next((m) => m.payload === 'before');

    const outageLogged = Promise.all([a, b].map((n) => n.waitFor((l) => /Redis unreachable/.test(String(l.msg)))));
    await redis.stop();
    await outageLogged;

    // fail closed while it is away: new sessions, changes and readiness
    expect(await connectRefused(a.ports.mqtt, { username: 'bravo:d2', password: pw })).toBe(3);
    expect((await api(b, 'POST', '/tenants/bravo/acls', { device: null, action: 'publish', topic: 'x', permission: 'deny' })).status).toBe(503);
    expect((await fetch(`${a.http}/health/ready`)).status).toBe(503);
    // existing connections stay; a QoS 1 message sent now is acknowledged once it is stored
    const during = pub.publish('live/2', 'during', { qos: 1 });

    const recoveryLogged = Promise.all([a, b].map((n) => n.waitFor((l) => /Redis reachable again/.test(String(l.msg)), 15_000)));
    await redis.start();
    await recoveryLogged;
    await during;
    expect(sub.client.connected).toBe(true);
    await pub.publish('live/3', 'after', { qos: 1 });
    await sub.next((m) => m.payload === 'after');
    expect((await fetch(`${a.http}/health/ready`)).status).toBe(200);

    // the offline session's queue kept all three; the live one had each either live or queued
    const resumed = await dev(a, 'bravo', 'd1', { clientId: 'parked', clean: false });
    for (const payload of ['before', 'during', 'after']) await resumed.next((m) => m.payload === payload);
    const again = await dev(b, 'bravo', 'd1', { clientId: 'steady', clean: false });
    await (sub.received.some((m) => m.payload === 'during') ? Promise.resolve() : again.next((m) => m.payload === 'during'));
    // one line each way per node, not one per refused connection
    for (const node of [a, b]) {
      expect(node.lines.filter((l) => /Redis unreachable/.test(String(l.msg)))).toHaveLength(1);
      expect(node.lines.filter((l) => /Redis reachable again/.test(String(l.msg)))).toHaveLength(1);
    }
  });
});
