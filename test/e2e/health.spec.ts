import { Client } from 'pg';
import { PrismaService } from '../../src/database/prisma.service';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { connect, connectRefused, TestClient } from '../helpers/mqtt';

/**
 * /health/live and /health/ready while the database goes away. On PostgreSQL the database
 * refuses new connections and its sessions are terminated (then it comes back); on PGlite the
 * embedded database is closed under the running app.
 */
describe(`health probes with the database stopped (${databaseKind()})`, () => {
  let app: TestApp;
  const open: TestClient[] = [];
  const pw = 'health-password';

  const probe = async (path: string) => {
    const res = await fetch(`${app.http}${path}`);
    return { status: res.status, body: (await res.json()) as { status: string; checks?: Record<string, string> } };
  };

  /** Stops the database; returns how to bring it back (PostgreSQL only). */
  async function stopDatabase(): Promise<(() => Promise<void>) | null> {
    if (databaseKind() === 'pglite') {
      await app.running.app.get(PrismaService).onApplicationShutdown();
      return null;
    }
    const name = new URL(app.config.databaseUrl as string).pathname.slice(1);
    const admin = new Client({ connectionString: process.env.TEST_PG_URL });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS false`);
    await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    return async () => {
      await admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS true`);
      await admin.end();
    };
  }

  beforeAll(async () => {
    app = await startTestApp();
    for (const slug of ['cached', 'cold']) {
      await app.createTenant(slug);
      await app.createDevice(slug, 'd1', pw);
      await app.createDevice(slug, 'd2', pw);
      await app.allow(slug);
    }
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.end(true)));
    await app?.close();
  });

  it('stays live, turns unready, and keeps serving the devices it knows', async () => {
    const sub = await connect(app.mqttPort, { username: 'cached:d1', password: pw });
    const pub = await connect(app.mqttPort, { username: 'cached:d2', password: pw });
    open.push(sub, pub);
    await sub.subscribe('t');
    expect(await probe('/health/ready')).toMatchObject({ status: 200, body: { status: 'ok', checks: { database: 'ok', listeners: 'ok' } } });

    const restart = await stopDatabase();

    expect(await probe('/health/live')).toEqual({ status: 200, body: { status: 'ok' } });
    const ready = await probe('/health/ready');
    expect(ready.status).toBe(503);
    expect(ready.body.status).toBe('unavailable');
    expect(ready.body.checks?.database).toMatch(/^failing: /);
    expect(ready.body.checks?.listeners).toBe('ok');

    // the data plane never waits on the database: known devices keep talking...
    await pub.publish('t', 'still-flowing');
    expect((await sub.next()).payload).toBe('still-flowing');
    // ...and a connect that would need it is refused, server unavailable (fail closed)
    expect(await connectRefused(app.mqttPort, { username: 'cold:d1', password: pw })).toBe(3);

    if (restart) {
      await restart();
      expect(await probe('/health/ready')).toMatchObject({ status: 200, body: { status: 'ok' } });
    }
  });
});
