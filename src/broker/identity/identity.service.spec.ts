import * as bcrypt from 'bcrypt';
import { loadConfig } from '../../config/config';
import { DEFAULT_LIMITS } from '../../tenants/limits';
import { ClientCertificateAuth } from './client-certificate-auth';
import { FakeTenantSource } from './fake-tenant-source.test-helper';
import { IdentityService } from './identity.service';
import { TenantHooks } from '../hooks';
import { BrokerLimits } from '../limits/broker-limits';
import type { BrokerClient } from '../session';

const config = loadConfig({ DATA_DIR: '/nonexistent', ADMIN_TOKEN: 'x', BCRYPT_COST: '4', AUTH_FAIL_DELAY_MS: '0' });
const password = Buffer.from('right-password');
const wrong = Buffer.from('wrong-password');

describe('IdentityService: reconnects with a verified password', () => {
  let source: FakeTenantSource;
  let identity: IdentityService;

  beforeEach(async () => {
    source = new FakeTenantSource();
    const passwordHash = await bcrypt.hash(password.toString(), 4);
    source.tenants.set('t1', {
      id: 't1',
      slug: 'acme',
      limits: { ...DEFAULT_LIMITS },
      requireClientCertificates: false,
      defaultAclPermission: 'allow',
      devices: [
        { id: 'dev-1', name: 'd1', enabled: true, passwordHash },
        { id: 'dev-2', name: 'd2', enabled: true, passwordHash },
      ],
      rules: [],
      certificates: [],
    });
    identity = new IdentityService(source, config);
  });

  it('are answered from memory once bcrypt accepted the password, and only then', async () => {
    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.1')).toBeNull();
    expect(await identity.checkPassword('acme:d1', password, '10.0.0.1')).toMatchObject({ ok: true });
    expect(identity.bcryptComparisons).toBe(1);

    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.2')).toMatchObject({ ok: true, device: { name: 'd1' } });
    expect(identity.bcryptComparisons).toBe(1);
    // anything else still goes through bcrypt: another password, another device, another tenant
    expect(identity.checkVerifiedPassword('acme:d1', wrong, '10.0.0.1')).toBeNull();
    expect(identity.checkVerifiedPassword('acme:d1', undefined, '10.0.0.1')).toBeNull();
    expect(identity.checkVerifiedPassword('acme:d2', password, '10.0.0.1')).toBeNull();
    expect(identity.checkVerifiedPassword('other:d1', password, '10.0.0.1')).toBeNull();
  });

  it('leave locked-out addresses, disabled devices and rotated passwords to the full check', async () => {
    await identity.checkPassword('acme:d1', password, '10.0.0.1');
    for (let i = 0; i < config.authFail.maxPerAddress; i++) await identity.checkPassword(`acme:guess${i}`, wrong, '10.0.0.9');
    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.9')).toBeNull();
    expect(await identity.checkPassword('acme:d1', password, '10.0.0.9')).toMatchObject({ ok: false, reason: 'locked-out-address' });
    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.1')).toMatchObject({ ok: true });

    const tenant = source.tenants.get('t1');
    if (!tenant) throw new Error('fixture');
    tenant.devices[0].enabled = false;
    await identity.apply({ kind: 'device', tenantId: 't1', name: 'd1', disconnect: true });
    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.1')).toBeNull();

    tenant.devices[0].enabled = true;
    tenant.devices[0].passwordHash = await bcrypt.hash('rotated', 4);
    await identity.apply({ kind: 'device', tenantId: 't1', name: 'd1', disconnect: true });
    expect(identity.checkVerifiedPassword('acme:d1', password, '10.0.0.1')).toBeNull();
    expect(await identity.checkPassword('acme:d1', password, '10.0.0.1')).toMatchObject({ ok: false, reason: 'bad-credentials' });
  });

  it('lets the CONNECT hook accept such a reconnect before it returns (no promise, no bcrypt)', async () => {
    const events = { connectRefused: jest.fn(), publishDropped: jest.fn(), sessionClosed: jest.fn() };
    const limits = new BrokerLimits(identity, events, config.maxPacketSize);
    const hooks = new TenantHooks(identity, config, events, new ClientCertificateAuth(identity), limits);
    const client = () =>
      ({
        conn: { remoteAddress: '10.0.0.1' },
        connectPacket: { cmd: 'connect', clientId: 'c1', clean: true, keepalive: 60, protocolVersion: 4 },
        _parser: { _queue: null },
        subscriptions: {},
        deliverQoS: () => undefined,
      }) as unknown as BrokerClient;

    const first = client();
    await new Promise<void>((resolve, reject) =>
      hooks.authenticate(first, 'acme:d1', password, (err) => (err ? reject(err) : resolve())),
    );
    const second = client();
    let answer: [Error | null, boolean | null] | undefined;
    hooks.authenticate(second, 'acme:d1', password, (err, ok) => (answer = [err, ok]));
    expect(answer).toEqual([null, true]);
    expect(second.tenantSession).toMatchObject({ deviceName: 'd1', clientId: 'c1', remoteAddress: '10.0.0.1' });
    expect(second.connectPacket).toBeUndefined(); // an idle connection does not keep its CONNECT
    expect(second.id).toBe(first.id);
    expect(identity.bcryptComparisons).toBe(1);
    expect(events.connectRefused).not.toHaveBeenCalled();

    // fail closed there too: what throws while accepting refuses this CONNECT, nothing else
    jest.spyOn(limits, 'hasRoom').mockImplementation(() => {
      throw new Error('bookkeeping broke');
    });
    let refused: [Error | null, boolean | null] | undefined;
    hooks.authenticate(client(), 'acme:d1', password, (err, ok) => (refused = [err, ok]));
    expect(refused?.[0]).toMatchObject({ returnCode: 3 });
    expect(events.connectRefused).toHaveBeenCalledWith(expect.anything(), undefined, 'check-failed', 3);
  });
});
