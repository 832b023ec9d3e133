import { Inject, Injectable } from '@nestjs/common';
import { BrokerService } from '../broker/broker.service';
import { IdentityService } from '../broker/identity/identity.service';
import type { BrokerClient, TenantSession } from '../broker/session';
import { APP_CONFIG, AppConfig } from '../config/config';
import type { SessionDetail, SessionQuery, SessionSource, SessionView } from './session-source';
import { smallestByKey } from '../common/smallest';

type LiveClient = BrokerClient & { tenantSession: TenantSession };

/**
 * The sessions of this node, read from the broker's memory. A page costs one pass over the
 * tenant's live clients and keeps only the `limit` smallest client ids (no full sort, no state to
 * keep in step with connects and disconnects), so it stays cheap at tens of thousands of sessions.
 */
@Injectable()
export class LocalSessionSource implements SessionSource {
  constructor(
    private readonly broker: BrokerService,
    private readonly identity: IdentityService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  list(tenantId: string, q: SessionQuery): Promise<SessionView[]> {
    const tenant = this.identity.cachedTenant(tenantId);
    if (!tenant) return Promise.resolve([]);
    const { after, device, clientIdPrefix } = q;
    const candidates = filter(tenant.clients, (c): c is LiveClient => {
      const s = c.tenantSession;
      if (s === undefined || c.closed) return false;
      if (after !== undefined && s.clientId <= after) return false;
      if (device !== undefined && s.deviceName !== device) return false;
      if (clientIdPrefix !== undefined && !s.clientId.startsWith(clientIdPrefix)) return false;
      return true;
    });
    const page = smallestByKey(candidates, q.limit, (c) => c.tenantSession.clientId);
    return Promise.resolve(page.map((c) => this.view(c)));
  }

  get(tenantId: string, clientId: string): Promise<SessionDetail | null> {
    const client = this.find(tenantId, clientId);
    if (!client) return Promise.resolve(null);
    const unmount = client.tenantSession.tenant.mountpoint.unmount;
    const subscriptionList = Object.entries(client.subscriptions)
      .map(([routed, sub]) => ({ topic: unmount(routed), qos: sub.qos }))
      .sort((a, b) => (a.topic < b.topic ? -1 : a.topic > b.topic ? 1 : 0));
    return Promise.resolve({ ...this.view(client), subscriptionList });
  }

  kick(tenantId: string, clientId: string): Promise<boolean> {
    const client = this.find(tenantId, clientId);
    if (!client) return Promise.resolve(false);
    // closed synchronously: from here on the session is gone from every list
    if (client.tenantSession) client.tenantSession.kickedFor = 'session deleted through the API';
    client.close();
    return Promise.resolve(true);
  }

  private find(tenantId: string, clientId: string): LiveClient | null {
    const tenant = this.identity.cachedTenant(tenantId);
    if (!tenant) return null;
    // aedes keys its clients by the namespaced id: one lookup, whatever the number of sessions
    const clients = (this.broker.aedes as unknown as { clients: Record<string, BrokerClient | undefined> }).clients;
    const client = clients[tenant.mountpoint.clientId(clientId)];
    const session = client?.tenantSession;
    if (!client || !session || client.closed || session.tenant !== tenant) return null;
    return client as LiveClient;
  }

  private view(client: LiveClient): SessionView {
    const s = client.tenantSession;
    let subscriptions = 0;
    for (const _ in client.subscriptions) subscriptions++;
    return {
      clientId: s.clientId,
      device: s.deviceName,
      node: this.config.nodeId,
      remoteAddress: s.remoteAddress,
      connectedAt: new Date(s.connectedAt).toISOString(),
      cleanSession: s.cleanSession,
      keepalive: s.keepalive,
      protocolVersion: s.protocolVersion,
      subscriptions,
      messagesIn: s.messagesIn,
      messagesOut: s.messagesOut,
    };
  }
}

function* filter<T, S extends T>(items: Iterable<T>, keep: (item: T) => item is S): Iterable<S> {
  for (const item of items) if (keep(item)) yield item;
}
