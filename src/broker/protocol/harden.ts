import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { installStrictParser, setParserMaxPacketSize, type MqttPacketParser } from './parser';

/**
 * Per-connection protection, applied right after `aedes.handle(stream, req)`:
 *
 *   const client = aedes.handle(stream, req);
 *   hardenClient(client, { maxPacketSize, maxPacketSizeBeforeConnect: 65536, connectTimeoutMs: 10000 });
 *
 * 1. A strict reader (parser.ts): every malformed packet or protocol violation closes the
 *    connection; packets over the size limit are refused as soon as their length is read.
 * 2. A CONNECT deadline: a connection that has not sent a whole CONNECT within
 *    `connectTimeoutMs` of the accept is closed (slow-loris, half-open sockets).
 * 3. A bounded outbound queue. aedes writes every message straight into the socket and,
 *    when the socket is full, holds the broker-wide mqemitter slot (100 of them for the
 *    whole process) until the socket drains, so one consumer that never reads stalls every
 *    tenant, and a publisher flood queues without bound. Here a delivery releases its slot
 *    without waiting for that socket; what the socket has not taken is bounded per client:
 *    over `maxQueuedBytes` QoS 0 messages are dropped (as mosquitto drops them over its
 *    queue limit), and a client that stays over it for `slowConsumerTimeoutMs`, or reaches
 *    `hardQueuedBytes`, is disconnected. A persistent session keeps its QoS 1/2 messages in
 *    the session store and gets them on its next connect.
 */
export interface HardenOptions {
  /** MAX_PACKET_SIZE: the largest packet, fixed header included, once the CONNECT is accepted. */
  maxPacketSize: number;
  /** The largest packet before that (the CONNECT itself included). */
  maxPacketSizeBeforeConnect: number;
  /** A whole CONNECT must arrive within this many ms of the accept. */
  connectTimeoutMs: number;
  /** Bytes the socket may hold unsent before QoS 0 messages to this client are dropped. Default 1 MiB. */
  maxQueuedBytes?: number;
  /** Bytes unsent at which the client is disconnected at once. Default 4 × maxQueuedBytes + maxPacketSize. */
  hardQueuedBytes?: number;
  /** A client over maxQueuedBytes for this long is disconnected. Default 10 s. */
  slowConsumerTimeoutMs?: number;
  /** Told about each message not delivered and each slow consumer disconnected (metrics, logs). */
  onDrop?: (client: HardenableClient, reason: DropReason) => void;
}

export type DropReason = 'slow_consumer_qos0' | 'slow_consumer_disconnected';

export const DEFAULT_MAX_QUEUED_BYTES = 1 << 20;
export const DEFAULT_SLOW_CONSUMER_TIMEOUT_MS = 10_000;

type Deliver = (packet: { qos?: number; brokerId?: unknown }, cb: () => void) => void;

/** The aedes 1.2 Client internals this module touches. */
export interface HardenableClient {
  conn: Duplex & { setNoDelay?: (noDelay?: boolean) => unknown };
  _parser: unknown;
  _connectTimer: NodeJS.Timeout | null;
  broker?: { connectTimeout?: number };
  connected: boolean;
  closed: boolean;
  deliver0: Deliver;
  deliverQoS: Deliver;
  emit(event: 'error', error: Error): boolean;
  /** read by aedes' patched lib/write.js: set, live messages never wait for this socket to drain */
  onSocketFull?: (this: HardenableClient) => void;
  /** ours */
  _outbound?: OutboundState;
}

interface OutboundState {
  soft: number;
  hard: number;
  stallMs: number;
  stallTimer: NodeJS.Timeout | null;
  dropped: number;
  onDrop?: HardenOptions['onDrop'];
}

export function hardenClient(client: HardenableClient, options: HardenOptions): void {
  installStrictParser(client._parser as MqttPacketParser, {
    maxPacketSize: options.maxPacketSize,
    maxPacketSizeBeforeConnect: options.maxPacketSizeBeforeConnect,
  });

  // aedes arms a CONNECT timer (broker.connectTimeout) at construction, clears it when the
  // CONNECT arrives and on close; we re-arm that same timer with our deadline unless it is
  // aedes' own (the broker passes it), which saves a timer per connection.
  if (client._connectTimer === null || client.broker?.connectTimeout !== options.connectTimeoutMs) {
    if (client._connectTimer) clearTimeout(client._connectTimer);
    client._connectTimer = setTimeout(() => {
      client.emit('error', new Error(`no CONNECT within ${options.connectTimeoutMs} ms`));
    }, options.connectTimeoutMs);
  }

  // Nagle's algorithm adds tens of ms to every small fan-out write (TCP and TLS sockets)
  if (typeof client.conn.setNoDelay === 'function') client.conn.setNoDelay(true);
  if (client.conn instanceof Socket) coalesceWrites(client.conn);

  const soft = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  client._outbound = {
    soft,
    hard: options.hardQueuedBytes ?? 4 * soft + options.maxPacketSize,
    stallMs: options.slowConsumerTimeoutMs ?? DEFAULT_SLOW_CONSUMER_TIMEOUT_MS,
    stallTimer: null,
    dropped: 0,
    onDrop: options.onDrop,
  };
  client.onSocketFull = onSocketFull;
  client.deliver0 = boundDelivery(client, client.deliver0);
  client.deliverQoS = boundDelivery(client, client.deliverQoS);
}

/**
 * On a busy broker, everything written to `socket` during one turn of the event loop goes out
 * in one writev. mqtt-packet corks the stream around each packet and uncorks it on the next
 * tick, and aedes hands each delivery on from a setImmediate of its own, so without this a
 * subscriber taking 50,000 messages a second costs 50,000 writev calls (a quarter of the
 * broker's CPU in the fan-in benchmark, for bare aedes too). The first cork of a turn takes one
 * more, released for every such socket together by one setImmediate, right after the reads
 * that caused the writes. Holding costs a message the rest of its poll phase (~0.2 ms at p99
 * at 2,000 msg/s), so it only happens in a turn that follows BUSY_TURNS_IN_A_ROW turns with
 * BUSY_TURN_PACKETS packets or more each: a quiet broker writes each packet at once, as aedes
 * does, and so does one that takes a single burst (a QoS 1 message writes two packets, so 16
 * messages arriving together made a busy turn). TCP and TLS sockets only: a WebSocket stream
 * turns each chunk into a frame.
 */
export function coalesceWrites(socket: Socket): void {
  socket.cork = corkUntilEndOfTurn;
}

const corkSocket = Socket.prototype.cork;
/** Packets written in one turn from which the next turn holds its writes (a busy broker). */
export const BUSY_TURN_PACKETS = 32;
/** Busy turns in a row (turns without writes do not count) from which the next turn holds. */
export const BUSY_TURNS_IN_A_ROW = 2;
let packetsThisTurn = 0;
let busyTurns = 0;
let busy = false;
/** an endTurn is scheduled for this turn */
let turnEnding = false;
/** Sockets holding an extra cork until the end of this turn; swapped with `flushing` on flush. */
let held: Socket[] = [];
let flushing: Socket[] = [];

function corkUntilEndOfTurn(this: Socket): void {
  if (!turnEnding) {
    turnEnding = true;
    setImmediate(endTurn);
  }
  packetsThisTurn++;
  // corked 0: not held yet this turn (mqtt-packet's own corks are released on the next tick)
  if (busy && this.writableCorked === 0) {
    held.push(this);
    corkSocket.call(this);
  }
  corkSocket.call(this);
}

function endTurn(): void {
  turnEnding = false;
  busyTurns = packetsThisTurn >= BUSY_TURN_PACKETS ? busyTurns + 1 : 0;
  busy = busyTurns >= BUSY_TURNS_IN_A_ROW;
  packetsThisTurn = 0;
  const sockets = held;
  held = flushing;
  flushing = sockets;
  // uncork of a destroyed or ended socket (end() uncorks fully) does nothing
  for (let i = 0; i < sockets.length; i++) sockets[i].uncork();
  sockets.length = 0;
}

/**
 * Tightens the packet size limit after authentication (a tenant's own limit). Packets whose
 * length was already read are not affected.
 */
export function setMaxPacketSize(client: HardenableClient, maxPacketSize: number): void {
  setParserMaxPacketSize(client._parser as MqttPacketParser, maxPacketSize);
}

/** How many messages were not delivered to this client because it did not read them. */
export function droppedMessages(client: HardenableClient): number {
  return client._outbound?.dropped ?? 0;
}

function boundDelivery(client: HardenableClient, deliver: Deliver): Deliver {
  // Subscriptions capture client.deliver0/deliverQoS when they are made, so wrapping them
  // before the CONNECT covers every subscription, retained replay and client.publish().
  return function deliverBounded(packet, cb) {
    const state = client._outbound as OutboundState;
    const queued = client.conn.writableLength;
    if (queued > state.soft) {
      if (queued > state.hard) {
        disconnectSlowConsumer(client, state, `${queued} bytes unsent`);
        setImmediate(cb);
        return;
      }
      watchBacklog(client, state);
      if (!packet.qos) {
        state.dropped++;
        state.onDrop?.(client, 'slow_consumer_qos0');
        setImmediate(cb);
        return;
      }
    }
    // aedes' write (patched lib/write.js) calls onSocketFull instead of holding the broker-wide
    // delivery slot until this socket drains; retained replays keep aedes' pacing
    deliver(packet, cb);
  };
}

/** Called by aedes' write (patched) when a live message did not fit in the socket's buffer. */
function onSocketFull(this: HardenableClient): void {
  const state = this._outbound;
  if (state !== undefined && this.conn.writableLength > state.soft) watchBacklog(this, state);
}

/** A client still over the soft limit `stallMs` after it was first seen over it is disconnected. */
function watchBacklog(client: HardenableClient, state: OutboundState): void {
  if (state.stallTimer !== null || client.closed) return;
  state.stallTimer = setTimeout(() => {
    state.stallTimer = null;
    if (client.closed) return;
    const queued = client.conn.writableLength;
    if (queued > state.soft) {
      disconnectSlowConsumer(client, state, `${queued} bytes still unsent after ${state.stallMs} ms`);
    }
  }, state.stallMs);
  state.stallTimer.unref();
}

function disconnectSlowConsumer(client: HardenableClient, state: OutboundState, why: string): void {
  if (client.closed) return;
  if (state.stallTimer !== null) clearTimeout(state.stallTimer);
  state.stallTimer = null;
  state.onDrop?.(client, 'slow_consumer_disconnected');
  // an error closes the connection the way aedes closes it for any other error (will sent)
  client.emit('error', new Error(`slow consumer: ${why}`));
}

