import type { TenantLimits } from '../../tenants/limits';
import { TokenBucket } from './token-bucket';

/** How often each limit refused, throttled or cut something: plain fields, bumped in place. */
export class LimitHits implements Record<keyof TenantLimits, number> {
  maxConnections = 0;
  maxMessagesPerSecond = 0;
  maxClientMessagesPerSecond = 0;
  maxPayloadBytes = 0;
  maxSubscriptionsPerClient = 0;
  maxRetainedMessages = 0;
  maxRetainedBytes = 0;
  maxInflightPerClient = 0;
  maxQueuedMessagesPerClient = 0;
}

/** What the limits keep per tenant (on its TenantRuntime). */
export class TenantLimitState {
  /** the tenant's inbound budget, shared by all its clients on this node */
  readonly publishBudget = new TokenBucket();
  /** connections accepted and not yet closed (counted from authentication, before aedes registers them) */
  connections = 0;
  /** retained messages this node stored for the tenant: routed topic -> payload bytes */
  readonly retained = new Map<string, number>();
  retainedBytes = 0;
  /** QoS 1/2 messages queued for each offline persistent session since it last connected (broker client id -> count) */
  readonly queued = new Map<string, number>();
}

/** aedes' delivery function for one client (`client.deliverQoS`). */
export type Deliver = (packet: OutboundPacket, cb: () => void) => void;

export interface OutboundPacket {
  topic: string;
  payload: Buffer | string;
  qos: number;
  brokerId?: unknown;
}

/** PUBLISHes held back by the rate limits: aedes' callbacks, oldest first, and when each may go. */
export interface HeldPublishes {
  readonly done: ((err?: Error | null) => void)[];
  readonly until: number[];
}

/** QoS 1/2 deliveries waiting for room in the in-flight window, with the callback to call once
 * sent (retained replays, which aedes paces one by one) or null (live messages). */
export interface WaitingDeliveries {
  readonly packets: OutboundPacket[];
  readonly callbacks: ((() => void) | null)[];
}

/** What the limits keep per connection (on its TenantSession). */
export class ClientLimitState {
  /** counted in the tenant's connections until detach() */
  attached = false;
  readonly publishBudget = new TokenBucket();
  /** created the first time a publish is held: most connections never are, and they are idle */
  held: HeldPublishes | null = null;
  releaseTimer: NodeJS.Timeout | null = null;
  /** reads from the socket wait while publishes are held (installed on first use) */
  readGated = false;
  /** outbound QoS 1/2 messages written and not yet acknowledged */
  inflight = 0;
  /** true while aedes' own deliverQoS runs for this client: authorizeForward counts what it passes */
  inQoSDelivery = false;
  /** created the first time the in-flight window is full */
  waiting: WaitingDeliveries | null = null;
  /** aedes' deliverQoS, which the window wraps */
  deliver: Deliver | null = null;
}
