import type { BrokerService } from '../broker/broker.service';
import type { IdentityService } from '../broker/identity/identity.service';
import type { TenantRuntime } from '../broker/identity/tenant-runtime';
import type { BrokerClient } from '../broker/session';
import { Mountpoint } from '../broker/tenancy/mountpoint';
import type { AppConfig } from '../config/config';
import { LocalSessionSource } from './local-session-source';

/** The broker's memory faked with plain objects: what is tested is paging over it. */
function fakeTenant(id: string, n: number) {
  const mountpoint = new Mountpoint(id);
  const tenant = { mountpoint, clients: new Set<BrokerClient>() } as unknown as TenantRuntime;
  const byId: Record<string, BrokerClient> = {};
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    // connection order unrelated to client-id order
    const clientId = `c-${((i * 7919) % n).toString().padStart(5, '0')}`;
    const client = {
      id: mountpoint.clientId(clientId),
      closed: false,
      close(this: { closed: boolean }) {
        this.closed = true;
      },
      subscriptions: { [mountpoint.mount('a/b')]: { qos: 1 }, [mountpoint.mount('$SYS/#')]: { qos: 0 } },
      tenantSession: {
        tenant,
        clientId,
        deviceName: i % 10 === 0 ? 'gateway' : `d${i}`,
        remoteAddress: '127.0.0.1',
        connectedAt: 0,
        cleanSession: true,
        keepalive: 60,
        protocolVersion: 4,
        messagesIn: i,
        messagesOut: 0,
      },
    } as unknown as BrokerClient;
    tenant.clients.add(client);
    byId[client.id] = client;
    ids.push(clientId);
  }
  return { tenant, byId, ids: ids.sort() };
}

describe('LocalSessionSource', () => {
  const a = fakeTenant('talpha0001', 10_000);
  const b = fakeTenant('tbravo0001', 50);
  const tenants = new Map([
    ['talpha0001', a.tenant],
    ['tbravo0001', b.tenant],
  ]);
  const source = new LocalSessionSource(
    { aedes: { clients: { ...a.byId, ...b.byId } } } as unknown as BrokerService,
    { cachedTenant: (id: string) => tenants.get(id) } as unknown as IdentityService,
    { nodeId: 'node-1' } as AppConfig,
  );

  it('pages through 10,000 sessions by client id, each exactly once', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let page = 0; page < 200; page++) {
      const items = await source.list('talpha0001', { after, limit: 100 });
      seen.push(...items.map((s) => s.clientId));
      if (items.length < 100) break;
      after = items[items.length - 1].clientId;
    }
    expect(seen).toEqual(a.ids);
  });

  it('filters by device and client-id prefix, and shows one session with unmounted subscriptions', async () => {
    const gateways = await source.list('talpha0001', { limit: 2000, device: 'gateway' });
    expect(gateways).toHaveLength(1000);
    expect(gateways.every((s) => s.device === 'gateway')).toBe(true);
    const prefixed = await source.list('talpha0001', { limit: 1000, clientIdPrefix: 'c-0999' });
    expect(prefixed.map((s) => s.clientId)).toEqual(a.ids.filter((id) => id.startsWith('c-0999')));
    const one = await source.get('talpha0001', 'c-00042');
    expect(one).toMatchObject({ clientId: 'c-00042', node: 'node-1', subscriptions: 2 });
    expect(one?.subscriptionList).toEqual([
      { topic: '$SYS/#', qos: 0 },
      { topic: 'a/b', qos: 1 },
    ]);
  });

  it("never answers with another tenant's session, and drops a kicked one at once", async () => {
    expect(await source.get('tbravo0001', 'c-09999')).toBeNull();
    expect((await source.list('tbravo0001', { limit: 100 })).map((s) => s.clientId)).toEqual(b.ids);
    expect(await source.kick('tbravo0001', 'c-09999')).toBe(false);
    expect(await source.kick('talpha0001', 'c-00000')).toBe(true);
    expect(await source.get('talpha0001', 'c-00000')).toBeNull();
    expect((await source.list('talpha0001', { limit: 1 }))[0].clientId).toBe('c-00001');
    expect(await source.list('tunknown01', { limit: 10 })).toEqual([]);
  });
});
