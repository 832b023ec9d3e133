import { startTestApp, TestApp } from '../helpers/app';
import { connect, connectRefused, rawConnack, subackCodes, TestClient } from '../helpers/mqtt';

/** ANONYMOUS_TENANT: credential-less connects land in that tenant, under its ACLs. */
describe('anonymous tenant', () => {
  let app: TestApp;
  const open: TestClient[] = [];

  beforeAll(async () => {
    app = await startTestApp({ ANONYMOUS_TENANT: 'sandbox' });
    await app.createTenant('sandbox');
    await app.allow('sandbox', { topic: 'public/#' });
    await app.createTenant('private');
    await app.createDevice('private', 'd', 'private-password');
    await app.allow('private');
  });

  afterAll(async () => {
    await Promise.all(open.map((c) => c.end(true)));
    await app?.close();
  });

  it("puts credential-less clients in the tenant, under the tenant's rules", async () => {
    const a = await connect(app.mqttPort, { clientId: 'anon-a' });
    const b = await connect(app.mqttPort, {});
    open.push(a, b);
    expect(await subackCodes(a, ['public/#', 'other/#'])).toEqual([0, 128]);
    await b.publish('public/hello', 'from-b');
    expect(await a.next()).toMatchObject({ topic: 'public/hello', payload: 'from-b' });
  });

  it('keeps the anonymous tenant apart from the others', async () => {
    const anon = await connect(app.mqttPort, {});
    const priv = await connect(app.mqttPort, { username: 'private:d', password: 'private-password' });
    open.push(anon, priv);
    await priv.subscribe('#');
    await anon.publish('public/x', 'anon-message');
    await priv.publish('marker', 'm');
    await priv.next((m) => m.payload === 'm');
    expect(priv.received.map((m) => m.payload)).toEqual(['m']);
  });

  it('takes a zero-length username without a password as no credential', async () => {
    expect(await rawConnack(app.mqttPort, { clientId: 'empty-user', clean: true, username: '' })).toBe(0);
    expect(await rawConnack(app.mqttPort, { clientId: 'empty-user-pw', clean: true, username: '', password: 'x' })).toBe(4);
  });

  it('still checks credentials when a username is given', async () => {
    expect(await connectRefused(app.mqttPort, { username: 'private:d', password: 'wrong-password' })).toBe(4);
  });
});
