import type { Aedes } from 'aedes';
import type { HookEvents } from '../hooks';
import type { IdentityService } from '../identity/identity.service';
import type { TenantRuntime } from '../identity/tenant-runtime';
import { setMaxPacketSize, type HardenableClient } from '../protocol';
import type { BrokerClient, TenantSession } from '../session';
import { ClientLimitState, type Deliver, type HeldPublishes, type OutboundPacket } from './limit-state';

/** QoS 1/2 live messages a client may have waiting for its in-flight window before they are dropped. */
export const MAX_WAITING_PER_CLIENT = 1000;

/** The most a PUBLISH adds to its payload: fixed header (5), topic (2 + 65535), packet id (2). */
const PUBLISH_OVERHEAD = 5 + 2 + 65535 + 2;

interface RetainedPacket {
  topic: string;
  payload: Buffer | string;
}

interface RetainedStore {
  storeRetained(packet: RetainedPacket): Promise<void>;
}

interface OfflineQueueStore {
  outgoingEnqueueCombi(subs: { clientId: string }[], packet: unknown): Promise<void>;
}

/**
 * The per-tenant limits of DESIGN.md "Limits", enforced in the data plane. Everything here is
 * memory only; a message costs a few integer operations and, while within its budgets, no
 * allocation and no timer.
 *
 * - maxConnections: counted from authentication to socket close; over it, CONNACK 3.
 * - maxMessagesPerSecond (tenant) / maxClientMessagesPerSecond: token buckets refilled lazily
 *   from timestamps. A PUBLISH over budget is held (its aedes callback is called later) and the
 *   connection stops reading until its budget refills: TCP pushes back on that client alone.
 * - maxPayloadBytes: a bigger PUBLISH closes the connection. The connection's packet reader
 *   (protocol/) is also told the largest packet such a PUBLISH can make, so it refuses bigger
 *   ones before buffering them.
 * - maxSubscriptionsPerClient: checked in authorizeSubscribe (SUBACK 0x80).
 * - maxRetainedMessages / maxRetainedBytes: a retained PUBLISH over them is delivered to live
 *   subscribers but not stored (the previous retained message of that topic, if any, stays).
 * - maxInflightPerClient: QoS 1/2 messages sent and not yet acknowledged; more wait in a
 *   per-client queue (MAX_WAITING_PER_CLIENT), beyond which they are dropped.
 * Every refusal bumps the tenant's `limitHits` (and dropped/refused counters), read by metrics.
 */
export class BrokerLimits {
  constructor(
    private readonly identity: IdentityService,
    private readonly events: HookEvents,
    /** MAX_PACKET_SIZE, for every connection */
    private readonly maxPacketSize: number,
  ) {}

  /** Hooks what aedes does not route through its hooks: retained stores and acknowledgements. */
  install(aedes: Aedes, opts: { boundOfflineQueues: boolean } = { boundOfflineQueues: true }): void {
    if (opts.boundOfflineQueues) this.boundOfflineQueues(aedes);
    const persistence = (aedes as unknown as { persistence: RetainedStore }).persistence;
    const store = persistence.storeRetained.bind(persistence);
    persistence.storeRetained = (packet: RetainedPacket): Promise<void> => {
      const topic = packet.topic;
      // $SYS and the broker's own `$` topics count against no tenant's quota
      if (topic.charCodeAt(0) === 36) return store(packet);
      const tenantId = topic.slice(0, topic.indexOf('/'));
      const tenant = this.identity.cachedTenant(tenantId);
      if (tenant !== undefined) return this.admitRetained(tenant, packet) ? store(packet) : Promise.resolve();
      // published through the REST API into a tenant not loaded on this node yet
      return this.identity
        .tenantById(tenantId)
        .then((t) => (t === null || this.admitRetained(t, packet) ? store(packet) : undefined));
    };
    // emitted for each PUBACK and PUBCOMP a client sends (lib/handlers/puback.js)
    (aedes as unknown as NodeJS.EventEmitter).on('ack', (_packet: unknown, client: BrokerClient | null) => {
      const session = client?.tenantSession;
      if (session !== undefined) this.acknowledged(session);
    });
  }

  /**
   * maxQueuedMessagesPerClient: aedes queues every QoS 1/2 message for every persistent
   * subscription; for a session that is offline (not connected to this node) the queue only
   * grows, so past the limit further messages are not queued for it (dropped and counted).
   * Connected sessions are not counted: their messages are acknowledged as they go, under
   * maxInflightPerClient. Single node only: with Redis another node may hold the session.
   */
  private boundOfflineQueues(aedes: Aedes): void {
    const persistence = (aedes as unknown as { persistence: OfflineQueueStore }).persistence;
    const clients = (aedes as unknown as { clients: Record<string, unknown> }).clients;
    const enqueue = persistence.outgoingEnqueueCombi.bind(persistence);
    persistence.outgoingEnqueueCombi = (subs, packet) => {
      // allocation only once a queue is full: until then the same array is passed on
      let kept: { clientId: string }[] | null = null;
      for (let i = 0; i < subs.length; i++) {
        const admitted = clients[subs[i].clientId] !== undefined || this.admitQueued(subs[i].clientId);
        if (!admitted && kept === null) kept = subs.slice(0, i);
        else if (admitted && kept !== null) kept.push(subs[i]);
      }
      const list = kept ?? subs;
      return list.length > 0 ? enqueue(list, packet) : Promise.resolve();
    };
  }

  /** Counts one more message queued for an offline session; false (counted as a drop) past the limit. */
  private admitQueued(clientId: string): boolean {
    const tenant = this.identity.cachedTenant(clientId.slice(0, clientId.indexOf(':')));
    if (tenant === undefined) return true;
    const queued = tenant.limitState.queued;
    const n = queued.get(clientId) ?? 0;
    if (n < tenant.limits.maxQueuedMessagesPerClient) {
      queued.set(clientId, n + 1);
      return true;
    }
    tenant.counters.limitHits.maxQueuedMessagesPerClient++;
    const counters = tenant.counters;
    counters.messagesDropped++;
    counters.messagesDroppedBy['offline-queue-full'] = (counters.messagesDroppedBy['offline-queue-full'] ?? 0) + 1;
    return false;
  }

  /** Whether the tenant may take one more connection; counts the refusal when not. */
  hasRoom(tenant: TenantRuntime): boolean {
    if (tenant.limitState.connections < tenant.limits.maxConnections) return true;
    tenant.counters.limitHits.maxConnections++;
    return false;
  }

  /** An authenticated connection: counted until its socket closes, its deliveries windowed. */
  attach(client: BrokerClient, session: TenantSession): void {
    const tenantState = session.tenant.limitState;
    // the session's queue is delivered now: it counts afresh from its next disconnection
    tenantState.queued.delete(client.id);
    tenantState.connections++;
    const packetLimit = session.tenant.limits.maxPayloadBytes + PUBLISH_OVERHEAD;
    if (packetLimit < this.maxPacketSize) setMaxPacketSize(client as unknown as HardenableClient, packetLimit);
    const st = session.limitState;
    st.attached = true;
    const internals = client as unknown as { deliverQoS: Deliver };
    const deliver = internals.deliverQoS;
    st.deliver = deliver;
    // subscriptions capture client.deliverQoS when made: authentication comes before any of them
    internals.deliverQoS = (packet, cb) => {
      if (packet.qos > 0 && ((st.waiting !== null && st.waiting.packets.length > 0) || st.inflight >= session.tenant.limits.maxInflightPerClient)) {
        this.wait(session, packet, cb);
        return;
      }
      st.inQoSDelivery = true;
      try {
        deliver(packet, cb);
      } finally {
        st.inQoSDelivery = false;
      }
    };
  }

  /** The socket of an attached session closed (BrokerService calls this from its 'close'). */
  detach(session: TenantSession): void {
    const st = session.limitState;
    if (!st.attached) return;
    st.attached = false;
    session.tenant.limitState.connections--;
    if (st.releaseTimer !== null) clearTimeout(st.releaseTimer);
    st.releaseTimer = null;
  }

  /** maxPayloadBytes: an Error (which closes the connection) for a PUBLISH over it. */
  checkPayload(session: TenantSession, payload: Buffer | string): Error | null {
    if (payload.length <= session.tenant.limits.maxPayloadBytes) return null;
    session.tenant.counters.limitHits.maxPayloadBytes++;
    this.events.publishDropped(session, 'payload-too-large');
    return new Error(`PUBLISH payload of ${payload.length} bytes is over the tenant's maxPayloadBytes`);
  }

  /**
   * The rate limits: calls `done` now when both budgets allow the PUBLISH, else holds it (in
   * arrival order) until they have refilled, with the connection's reads paused meanwhile.
   */
  admit(client: BrokerClient, session: TenantSession, done: (err?: Error | null) => void): void {
    const now = performance.now();
    const tenant = session.tenant;
    const limits = tenant.limits;
    const st = session.limitState;
    const tenantWait = tenant.limitState.publishBudget.take(now, limits.maxMessagesPerSecond);
    const clientWait = st.publishBudget.take(now, limits.maxClientMessagesPerSecond);
    if (tenantWait === 0 && clientWait === 0 && (st.held === null || st.held.done.length === 0)) {
      done(null);
      return;
    }
    if (clientWait > 0 && clientWait >= tenantWait) tenant.counters.limitHits.maxClientMessagesPerSecond++;
    else if (tenantWait > 0) tenant.counters.limitHits.maxMessagesPerSecond++;
    const held = (st.held ??= { done: [], until: [] });
    const previous = held.until.length > 0 ? held.until[held.until.length - 1] : 0;
    const until = Math.max(now + Math.max(tenantWait, clientWait), previous);
    held.done.push(done);
    held.until.push(until);
    if (!st.readGated) gateReads(client, st);
    if (st.releaseTimer === null) this.armRelease(client, st, until - now);
  }

  /** authorizeForward let `packet` through to `client`: bytes out, and the in-flight window. */
  forwarded(client: BrokerClient, session: TenantSession, packet: OutboundPacket): void {
    session.tenant.counters.bytesOut += packet.payload.length;
    const st = session.limitState;
    if (st.inQoSDelivery && packet.qos > 0) {
      // aedes downgrades to the QoS of a subscription keyed by the topic itself (lib/client.js)
      const sub = client.subscriptions[packet.topic];
      if (sub === undefined || sub.qos > 0) st.inflight++;
    }
  }

  private acknowledged(session: TenantSession): void {
    const st = session.limitState;
    if (st.inflight > 0) st.inflight--;
    const max = session.tenant.limits.maxInflightPerClient;
    const deliver = st.deliver as Deliver;
    const waiting = st.waiting;
    if (waiting === null) return;
    while (waiting.packets.length > 0 && st.inflight < max) {
      const packet = waiting.packets.shift() as OutboundPacket;
      const cb = waiting.callbacks.shift() ?? noop;
      st.inQoSDelivery = true;
      try {
        deliver(packet, cb);
      } finally {
        st.inQoSDelivery = false;
      }
    }
  }

  private wait(session: TenantSession, packet: OutboundPacket, cb: () => void): void {
    const st = session.limitState;
    session.tenant.counters.limitHits.maxInflightPerClient++;
    const waiting = (st.waiting ??= { packets: [], callbacks: [] });
    if (packet.brokerId == null) {
      // a retained replay: aedes sends the next one when this one's callback is called
      waiting.packets.push(packet);
      waiting.callbacks.push(cb);
      return;
    }
    // a live message: its broker-wide delivery slot is released now, whatever happens to it
    if (waiting.packets.length < MAX_WAITING_PER_CLIENT) {
      waiting.packets.push(packet);
      waiting.callbacks.push(null);
    } else {
      this.events.publishDropped(session, 'inflight-queue-full');
    }
    setImmediate(cb);
  }

  private armRelease(client: BrokerClient, st: ClientLimitState, delayMs: number): void {
    const held = st.held as HeldPublishes;
    st.releaseTimer = setTimeout(() => {
      st.releaseTimer = null;
      if (client.closed) {
        held.done.length = 0;
        held.until.length = 0;
        return;
      }
      // timers may fire up to a millisecond early against performance.now()
      const now = performance.now() + 1;
      let n = 0;
      while (n < held.done.length && held.until[n] <= now) n++;
      const go = held.done.splice(0, n);
      held.until.splice(0, n);
      if (held.done.length > 0) this.armRelease(client, st, held.until[0] - now);
      for (const done of go) done(null);
    }, Math.max(1, Math.ceil(delayMs)));
    st.releaseTimer.unref();
  }

  /** maxRetainedMessages / maxRetainedBytes: whether to store this retained message. */
  private admitRetained(tenant: TenantRuntime, packet: RetainedPacket): boolean {
    const st = tenant.limitState;
    const topic = packet.topic;
    const size = packet.payload.length;
    const previous = st.retained.get(topic);
    if (size === 0) {
      // an empty retained message deletes the topic's [MQTT-3.3.1-10]
      if (previous !== undefined) {
        st.retained.delete(topic);
        st.retainedBytes -= previous;
      }
      return true;
    }
    const limits = tenant.limits;
    if (previous === undefined && st.retained.size >= limits.maxRetainedMessages) {
      tenant.counters.limitHits.maxRetainedMessages++;
      return false;
    }
    if (st.retainedBytes - (previous ?? 0) + size > limits.maxRetainedBytes) {
      tenant.counters.limitHits.maxRetainedBytes++;
      return false;
    }
    st.retained.set(topic, size);
    st.retainedBytes += size - (previous ?? 0);
    return true;
  }
}

/**
 * Stops aedes reading this connection while publishes are held. aedes reads a whole chunk on
 * each 'readable' event and when the packets of the previous chunk are done; the held callbacks
 * keep the latter from happening, and this swallows the former. Once the held publishes are
 * released their callbacks trigger the next read. (aedes' own client.pause() loses that count.)
 */
function gateReads(client: BrokerClient, st: ClientLimitState): void {
  const internals = client as unknown as { _nextBatch: (err?: Error) => void };
  const nextBatch = internals._nextBatch;
  const conn = client.conn;
  if (!conn.listeners('readable').includes(nextBatch)) return;
  st.readGated = true;
  conn.removeListener('readable', nextBatch);
  conn.on('readable', () => {
    if (st.held === null || st.held.done.length === 0) nextBatch();
  });
}

function noop(): void {}
