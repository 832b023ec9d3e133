import type { Client, ConnectPacket } from 'aedes';
import type { ClientAcl } from '../acl/compiled-acl';
import type { TenantRuntime } from './identity/tenant-runtime';
import { ClientLimitState } from './limits/limit-state';
import { proxiedAddressOf } from './proxy-protocol';

/** What we attach to an aedes client once it has authenticated. */
export class TenantSession {
  messagesIn = 0;
  messagesOut = 0;
  /** set when a subscription is partly overlapped by a deny rule: deliveries are then checked */
  readFiltered = false;
  /** ms since the epoch (a number: a Date per connection costs 96 bytes) */
  readonly connectedAt = Date.now();
  /** rate budget, held publishes and in-flight window of the tenant's limits (limits/) */
  readonly limitState = new ClientLimitState();
  /** for the audit log: why the broker disconnected it (a kick), or the error that ended it */
  kickedFor: string | null = null;
  closeError: string | null = null;
  /** aedes registered the client (its 'client' event): a refused or aborted CONNECT never is */
  registered = false;

  constructor(
    readonly tenant: TenantRuntime,
    /** null for the anonymous principal (ANONYMOUS_TENANT) */
    readonly deviceName: string | null,
    /** the client id the device sent (or was assigned), without the tenant namespace */
    readonly clientId: string,
    public acl: ClientAcl,
    readonly remoteAddress: string | null,
    readonly cleanSession: boolean,
    readonly keepalive: number,
    readonly protocolVersion: number,
    readonly authMethod: 'password' | 'certificate' | 'anonymous',
    readonly certificateSerial: string | null,
  ) {}

  /** The ACL of the tenant's current rule generation. */
  currentAcl(): ClientAcl {
    if (this.acl.generation !== this.tenant.ruleGeneration) {
      this.acl = this.tenant.compileAcl(this.deviceName, this.clientId);
    }
    return this.acl;
  }
}

/**
 * The peer address of a connection, whatever the listener (TCP, TLS, WebSocket): the client's
 * as a PROXY protocol header named it (PROXY_PROTOCOL), else the socket's.
 */
export function remoteAddressOf(client: BrokerClient): string | null {
  const conn = client.conn as { remoteAddress?: string };
  const socket = client.req?.socket;
  if (socket !== undefined) return proxiedAddressOf(socket) ?? socket.remoteAddress ?? null;
  return proxiedAddressOf(conn) ?? conn.remoteAddress ?? null;
}

/** Fields our hooks add to aedes' client; `unmountTopic` is read by the patched lib/write.js. */
export interface BrokerClient extends Client {
  tenantSession?: TenantSession;
  unmountTopic?: (routed: string) => string;
  /** the CONNECT as sent, from preConnect until the client is admitted into its tenant */
  connectPacket?: ConnectPacket;
  /** a CONNACK return code preConnect decided on; authenticate sends it */
  connectRefusal?: number;
  _parser: { _queue: unknown[] | null; listeners(event: 'packet'): ((packet: unknown) => void)[] } & NodeJS.EventEmitter;
  _will?: { topic: string; payload: Buffer; qos: 0 | 1 | 2; retain: boolean } | null;
  will?: unknown;
  subscriptions: Record<string, { qos: number }>;
}
