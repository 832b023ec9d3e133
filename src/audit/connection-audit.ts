import { Injectable } from '@nestjs/common';
import { BrokerService } from '../broker/broker.service';
import { deviceNameOf } from '../broker/identity/username';
import { remoteAddressOf, type BrokerClient, type TenantSession } from '../broker/session';
import { DEVICE_NAME_PATTERN } from '../devices/device.dto';
import { AuditService } from './audit.service';

/**
 * Connection events into the audit trail: `connect`, `connect.refused` (with its reason),
 * `disconnect` and `kick` (the broker closed it: device disabled, password rotated, rights
 * lost...). Buffered by AuditService: nothing here waits for the database. Refusals that name
 * no known tenant have no trail to go to (they are counted in metrics).
 */
@Injectable()
export class ConnectionAudit {
  constructor(
    private readonly audit: AuditService,
    broker: BrokerService,
  ) {
    broker.events.listeners.push({
      connectRefused: (client, tenant, reason, returnCode) => {
        if (tenant === undefined) return;
        const username = client.connectPacket?.username;
        const device = username !== undefined ? deviceNameOf(username) : null;
        this.audit.record({
          tenantId: tenant.id,
          type: 'connect.refused',
          actor: 'mqtt',
          target: device !== null && DEVICE_NAME_PATTERN.test(device) ? `devices/${device}` : null,
          detail: { reason, returnCode, clientId: cut(client.connectPacket?.clientId), remoteAddress: remoteAddressOf(client) },
        });
      },
      sessionClosed: (client, session) => this.closed(client, session),
    });
    broker.whenStarted((aedes) => {
      aedes.on('client', (c) => this.connected(c as BrokerClient));
      aedes.on('clientError', (c, err) => {
        const session = (c as BrokerClient).tenantSession;
        if (session !== undefined && session.closeError === null) session.closeError = cut(err.message) ?? null;
      });
    });
  }

  private connected(client: BrokerClient): void {
    const session = client.tenantSession;
    if (session === undefined) return;
    this.audit.record({
      tenantId: session.tenant.id,
      type: 'connect',
      actor: 'mqtt',
      target: targetOf(session),
      detail: {
        clientId: session.clientId,
        remoteAddress: session.remoteAddress,
        authMethod: session.authMethod,
        cleanSession: session.cleanSession,
        protocolVersion: session.protocolVersion,
      },
    });
  }

  private closed(client: BrokerClient, session: TenantSession): void {
    // a CONNECT that never completed was not recorded as a connect: no disconnect either
    if (!session.registered) return;
    const kicked = session.kickedFor !== null;
    const graceful = (client as unknown as { _disconnected?: boolean })._disconnected === true;
    this.audit.record({
      tenantId: session.tenant.id,
      type: kicked ? 'kick' : 'disconnect',
      actor: kicked ? 'broker' : 'mqtt',
      target: targetOf(session),
      detail: {
        clientId: session.clientId,
        reason: session.kickedFor ?? (graceful ? 'client-disconnect' : (session.closeError ?? 'connection-closed')),
        connectedSeconds: Math.round((Date.now() - session.connectedAt) / 1000),
        messagesIn: session.messagesIn,
        messagesOut: session.messagesOut,
      },
    });
  }
}

function targetOf(session: TenantSession): string | null {
  return session.deviceName !== null ? `devices/${session.deviceName}` : null;
}

function cut(s: string | undefined): string | undefined {
  return s !== undefined && s.length > 200 ? s.slice(0, 200) : s;
}
