import { decodeMqttString } from './strings';
import { topicFilterSyntaxError, topicNameSyntaxError } from './topics';

/**
 * A strict MQTT 3.1 / 3.1.1 reader for the parser instance aedes gives each client.
 *
 * aedes reads through mqtt-packet's Parser, a state machine over a BufferList:
 * _parseHeader -> _parseLength -> _parsePayload -> _newPacket (which emits 'packet'). We
 * replace the first three on the instance (never on the prototype, so mqtt.js and anything
 * else sharing mqtt-packet is untouched), which keeps every rule in our layer:
 *
 * - the packet size is checked as soon as the Remaining Length is known, before a byte of
 *   the body is buffered; before the CONNECT is accepted a smaller limit applies;
 * - the first packet must be a CONNECT and there must be only one [MQTT-3.1.0-1/2], also
 *   decided on the fixed header alone;
 * - fixed-header flags, connect flags, lengths, packet ids, strings [MQTT-1.5.3] and
 *   topics are checked the way mosquitto checks them (MQTT 3.1 keeps its laxer header and
 *   connect flags, as mosquitto does).
 *
 * Anything refused ends in _emitError: aedes turns the parser's 'error' into a closed
 * connection without a reply, which is what MQTT 3.1.1 requires for a malformed packet or
 * a protocol violation [MQTT-4.8.0-1].
 *
 * A CONNECT with a protocol name/level pair we do not speak (MQTT 5 included: aedes 1.x has
 * none) is emitted with only protocolId/protocolVersion filled in, so that the CONNECT hook
 * answers CONNACK 0x01 [MQTT-3.1.2-2] (see validate-connect.ts) instead of closing silently.
 *
 * Coupled to mqtt-packet 9.x internals (the state names, `packet`, `_list`, `settings`,
 * `_emitError`); test/e2e and src/broker/protocol/*.spec.ts fail loudly if those change.
 */

export interface PacketSizeLimits {
  /** Largest whole packet (fixed header included) once the CONNECT has been accepted. */
  maxPacketSize: number;
  /** Largest whole packet before that, the CONNECT itself included. */
  maxPacketSizeBeforeConnect: number;
}

/** The parts of mqtt-packet's Parser (and the BufferList it reads from) that we use. */
export interface MqttPacketParser {
  packet: ParsedPacket;
  error: Error | null;
  settings: { protocolVersion?: number; bridgeMode?: boolean };
  client?: { connected?: boolean; connackSent?: boolean };
  _list: {
    length: number;
    readUInt8(offset: number): number;
    slice(start: number, end: number): Buffer;
    consume(bytes: number): void;
  };
  _parseHeader(): boolean | void;
  _parseLength(): boolean | void;
  _parsePayload(): boolean | void;
  _parseVarByteNum(fullInfo: true): { bytes: number; value: number } | false;
  _emitError(err: Error): void;
  on(event: 'packet', listener: (packet: ParsedPacket) => void): unknown;
  /** ours */
  _strict?: StrictState;
}

/** mqtt-packet's Packet, filled in by our reader. */
export interface ParsedPacket {
  cmd: string | null;
  length: number;
  retain: boolean;
  qos: number;
  dup: boolean;
  topic: string | null;
  payload: Buffer | null;
  messageId?: number;
  [field: string]: unknown;
}

/** One object per connection: the limits are copied in, not referenced in a second object. */
interface StrictState extends PacketSizeLimits {
  headerFlags: number;
  connectSeen: boolean;
}

const EMPTY = Buffer.alloc(0);

const TYPES = [
  'reserved', 'connect', 'connack', 'publish', 'puback', 'pubrec', 'pubrel', 'pubcomp',
  'subscribe', 'suback', 'unsubscribe', 'unsuback', 'pingreq', 'pingresp', 'disconnect', 'auth',
] as const;

/** Required fixed-header flags of the packets a client may send (publish has real flags). */
const REQUIRED_FLAGS: Record<number, number> = { 4: 0, 5: 0, 6: 2, 7: 0, 8: 2, 10: 2, 12: 0, 14: 0 };

export function installStrictParser(parser: MqttPacketParser, limits: PacketSizeLimits): void {
  useBufferList(parser);
  parser._strict = {
    maxPacketSize: limits.maxPacketSize,
    maxPacketSizeBeforeConnect: limits.maxPacketSizeBeforeConnect,
    headerFlags: 0,
    connectSeen: false,
  };
  parser._parseHeader = parseHeader;
  parser._parseLength = parseLength;
  parser._parsePayload = parsePayload;
}

type BufferListClass = new () => MqttPacketParser['_list'];

/**
 * mqtt-packet buffers through bl's BufferListStream, a whole Duplex stream (its two states and
 * an emitter: ~1 KB that every connection keeps for life, ~15% of an idle aedes connection) of
 * which the parser only uses the buffer-list methods (append, length, readUInt8, slice,
 * consume, toString). bl's plain BufferList, which the stream class is built on and exports as
 * `.BufferList`, has exactly those. Swapped while nothing is buffered (right after aedes made
 * the parser); a bl without that export keeps its stream.
 */
function useBufferList(parser: MqttPacketParser): void {
  const list = parser._list;
  if (list.length !== 0) return;
  const Plain = (list.constructor as { BufferList?: BufferListClass }).BufferList;
  if (typeof Plain === 'function' && !(list instanceof Plain)) parser._list = new Plain();
}

/** Tightens (or loosens) the limit that applies once the CONNECT is accepted. */
export function setParserMaxPacketSize(parser: MqttPacketParser, maxPacketSize: number): void {
  if (parser._strict) parser._strict.maxPacketSize = maxPacketSize;
}

function fail(parser: MqttPacketParser, message: string): false {
  parser._emitError(new Error(message));
  return false;
}

function parseHeader(this: MqttPacketParser): boolean {
  const state = this._strict as StrictState;
  const first = this._list.readUInt8(0);
  const type = first >> 4;
  const flags = first & 0x0f;
  const version = this.settings.protocolVersion;

  if (!state.connectSeen) {
    if (type !== 1) return fail(this, 'the first packet must be a CONNECT [MQTT-3.1.0-1]');
    state.connectSeen = true;
  } else if (type === 1) {
    return fail(this, 'a second CONNECT is a protocol violation [MQTT-3.1.0-2]');
  }

  const packet = this.packet;
  packet.cmd = TYPES[type];
  if (type === 3) {
    const qos = (flags >> 1) & 0x03;
    if (qos === 3) return fail(this, 'PUBLISH with both QoS bits set [MQTT-3.3.1-4]');
    const dup = (flags & 0x08) !== 0;
    if (dup && qos === 0) return fail(this, 'PUBLISH QoS 0 with DUP set [MQTT-3.3.1-2]');
    packet.qos = qos;
    packet.dup = dup;
    packet.retain = (flags & 0x01) !== 0;
  } else if (type === 1) {
    // checked against the protocol level in the CONNECT (MQTT 3.1 did not reserve them)
    state.headerFlags = flags;
  } else if (REQUIRED_FLAGS[type] === undefined) {
    return fail(this, `${TYPES[type]} is not a packet a client may send [MQTT-2.2.1]`);
  } else if (flags !== REQUIRED_FLAGS[type] && version !== 3) {
    return fail(this, `invalid fixed header flags for ${TYPES[type]} [MQTT-2.2.2-2]`);
  }
  this._list.consume(1);
  return true;
}

function parseLength(this: MqttPacketParser): boolean {
  const result = this._parseVarByteNum(true);
  if (!result) return false;
  const state = this._strict as StrictState;
  const client = this.client;
  const accepted = !!client && (client.connected === true || client.connackSent === true);
  const limit = accepted ? state.maxPacketSize : state.maxPacketSizeBeforeConnect;
  // whole packet: type byte + length bytes + body
  if (1 + result.bytes + result.value > limit) {
    return fail(this, `packet of ${1 + result.bytes + result.value} bytes exceeds the limit of ${limit}`);
  }
  this.packet.length = result.value;
  this._list.consume(result.bytes);
  return true;
}

function parsePayload(this: MqttPacketParser): boolean {
  const packet = this.packet;
  if (packet.length > 0 && this._list.length < packet.length) return false;
  const body = packet.length === 0 ? EMPTY : this._list.slice(0, packet.length);
  const error = parseBody(this, packet, new Reader(body));
  if (error !== null) this._emitError(new Error(error));
  return true;
}

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(): number {
    if (this.pos >= this.buf.length) return -1;
    return this.buf[this.pos++];
  }

  u16(): number {
    if (this.buf.length - this.pos < 2) return -1;
    const value = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return value;
  }

  /** A length-prefixed binary field, or undefined when the packet is too short for it. */
  bytes(): Buffer | undefined {
    const length = this.u16();
    if (length < 0 || this.buf.length - this.pos < length) return undefined;
    const value = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return value;
  }

  /** A string: undefined when the packet is too short, null when it is not valid [MQTT-1.5.3]. */
  str(): string | null | undefined {
    const raw = this.bytes();
    return raw === undefined ? undefined : decodeMqttString(raw);
  }
}

function parseBody(parser: MqttPacketParser, packet: ParsedPacket, r: Reader): string | null {
  const version = parser.settings.protocolVersion;
  switch (packet.cmd) {
    case 'connect':
      return parseConnect(parser, packet, r);
    case 'publish':
      return parsePublish(packet, r);
    case 'puback':
    case 'pubrec':
    case 'pubrel':
    case 'pubcomp':
      if (r.remaining !== 2) return `${packet.cmd} must have a remaining length of 2`;
      packet.messageId = r.u16();
      if (packet.messageId === 0) return `${packet.cmd} with packet identifier 0 [MQTT-2.3.1-1]`;
      return null;
    case 'subscribe':
      return parseSubscribe(packet, r, parser.settings.bridgeMode === true);
    case 'unsubscribe':
      return parseUnsubscribe(packet, r);
    case 'pingreq':
    case 'disconnect':
      if (r.remaining !== 0) return `${packet.cmd} must have a remaining length of 0`;
      return null;
    default:
      // unreachable: parseHeader refuses every other type
      return `unexpected ${String(packet.cmd)} (protocol level ${String(version)})`;
  }
}

function parseConnect(parser: MqttPacketParser, packet: ParsedPacket, r: Reader): string | null {
  const state = parser._strict as StrictState;
  const protocolId = r.str();
  if (protocolId !== 'MQTT' && protocolId !== 'MQIsdp') {
    return 'unknown protocol name [MQTT-3.1.2-1]';
  }
  const levelByte = r.u8();
  if (levelByte < 0) return 'CONNECT too short';
  const level = levelByte & 0x7f;
  packet.protocolId = protocolId;
  packet.protocolVersion = level;
  if (levelByte & 0x80) packet.bridgeMode = true;
  const supported = (protocolId === 'MQIsdp' && level === 3) || (protocolId === 'MQTT' && level === 4);
  if (!supported) {
    // answered with CONNACK 0x01 by validateConnect [MQTT-3.1.2-2]; nothing else is read
    packet.clientId = '';
    packet.clean = true;
    packet.keepalive = 0;
    return null;
  }
  const strict = level === 4;
  if (strict && state.headerFlags !== 0) return 'invalid fixed header flags for CONNECT [MQTT-2.2.2-2]';

  const flags = r.u8();
  if (flags < 0) return 'CONNECT too short';
  if (strict && (flags & 0x01) !== 0) return 'reserved connect flag set [MQTT-3.1.2-3]';
  const hasWill = (flags & 0x04) !== 0;
  const willQos = (flags >> 3) & 0x03;
  const willRetain = (flags & 0x20) !== 0;
  let hasPassword = (flags & 0x40) !== 0;
  let hasUsername = (flags & 0x80) !== 0;
  if (willQos === 3) return 'will QoS 3 [MQTT-3.1.2-14]';
  if (!hasWill && (willQos !== 0 || willRetain)) return 'will QoS/retain without will flag [MQTT-3.1.2-13][MQTT-3.1.2-15]';
  if (strict && hasPassword && !hasUsername) return 'password flag without username flag [MQTT-3.1.2-22]';
  packet.clean = (flags & 0x02) !== 0;

  const keepalive = r.u16();
  if (keepalive < 0) return 'CONNECT too short';
  packet.keepalive = keepalive;

  const clientId = r.str();
  if (clientId === undefined) return 'CONNECT too short for its client identifier';
  if (clientId === null) return 'client identifier is not a valid MQTT string [MQTT-1.5.3]';
  packet.clientId = clientId;

  if (hasWill) {
    const topic = r.str();
    if (topic === undefined) return 'CONNECT too short for its will topic';
    if (topic === null) return 'will topic is not a valid MQTT string [MQTT-1.5.3]';
    const payload = r.bytes();
    if (payload === undefined) return 'CONNECT too short for its will message';
    packet.will = { topic, payload, qos: willQos, retain: willRetain };
  }

  if (hasUsername) {
    const username = r.str();
    if (username === null) return 'user name is not a valid MQTT string [MQTT-1.5.3]';
    if (username === undefined) {
      // MQTT 3.1 clients set the flag without sending the field; mosquitto ignores it
      if (strict) return 'user name flag set but no user name [MQTT-3.1.2-19]';
      hasUsername = false;
      hasPassword = false;
    } else {
      packet.username = username;
    }
  }
  if (hasPassword) {
    const password = r.bytes();
    if (password === undefined) {
      if (strict) return 'password flag set but no password [MQTT-3.1.2-21]';
    } else {
      packet.password = password;
    }
  }
  if (r.remaining !== 0) return 'trailing bytes after the CONNECT payload [MQTT-3.1.2-18][MQTT-3.1.2-20]';
  // mqtt-packet keeps the whole CONNECT here for the connection's life (its password too); the
  // later packets need only the protocol level and the bridge flag
  parser.settings = connectionSettings(level, packet.bridgeMode === true);
  return null;
}

const SETTINGS = new Map<number, MqttPacketParser['settings']>();

/** Shared, frozen settings per protocol level and bridge flag: none allocated per connection. */
function connectionSettings(protocolVersion: number, bridgeMode: boolean): MqttPacketParser['settings'] {
  const key = protocolVersion * 2 + (bridgeMode ? 1 : 0);
  let settings = SETTINGS.get(key);
  if (settings === undefined) {
    settings = Object.freeze({ protocolVersion, bridgeMode });
    SETTINGS.set(key, settings);
  }
  return settings;
}

function parsePublish(packet: ParsedPacket, r: Reader): string | null {
  const topic = r.str();
  if (topic === undefined) return 'PUBLISH too short for its topic';
  if (topic === null) return 'PUBLISH topic is not a valid MQTT string [MQTT-1.5.3]';
  const invalid = topicNameSyntaxError(topic);
  if (invalid !== null) return `PUBLISH: ${invalid} [MQTT-3.3.2-2]`;
  packet.topic = topic;
  if (packet.qos > 0) {
    const id = r.u16();
    if (id < 0) return 'PUBLISH too short for its packet identifier';
    if (id === 0) return 'PUBLISH with packet identifier 0 [MQTT-2.3.1-1]';
    packet.messageId = id;
  }
  packet.payload = r.remaining === 0 ? EMPTY : r.buf.subarray(r.pos);
  return null;
}

function parseSubscribe(packet: ParsedPacket, r: Reader, bridgeMode: boolean): string | null {
  const id = r.u16();
  if (id < 0) return 'SUBSCRIBE too short';
  if (id === 0) return 'SUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]';
  packet.messageId = id;
  if (r.remaining === 0) return 'SUBSCRIBE without a topic filter [MQTT-3.8.3-3]';
  const subscriptions: Array<Record<string, unknown>> = [];
  while (r.remaining > 0) {
    const topic = r.str();
    if (topic === undefined) return 'SUBSCRIBE payload truncated';
    if (topic === null) return 'SUBSCRIBE topic filter is not a valid MQTT string [MQTT-1.5.3]';
    const options = r.u8();
    if (options < 0) return 'SUBSCRIBE topic filter without requested QoS';
    if (options > 2) return 'SUBSCRIBE requested QoS byte invalid [MQTT-3.8.3-4]';
    const invalid = topicFilterSyntaxError(topic);
    if (invalid !== null) return `SUBSCRIBE: ${invalid}`;
    const subscription: Record<string, unknown> = { topic, qos: options };
    if (bridgeMode) {
      // as mqtt-packet does for bridges: no local echo, retain flag as published
      subscription.rh = 0;
      subscription.rap = true;
      subscription.nl = true;
    }
    subscriptions.push(subscription);
  }
  packet.subscriptions = subscriptions;
  return null;
}

function parseUnsubscribe(packet: ParsedPacket, r: Reader): string | null {
  const id = r.u16();
  if (id < 0) return 'UNSUBSCRIBE too short';
  if (id === 0) return 'UNSUBSCRIBE with packet identifier 0 [MQTT-2.3.1-1]';
  packet.messageId = id;
  if (r.remaining === 0) return 'UNSUBSCRIBE without a topic filter [MQTT-3.10.3-2]';
  const unsubscriptions: string[] = [];
  while (r.remaining > 0) {
    const topic = r.str();
    if (topic === undefined) return 'UNSUBSCRIBE payload truncated';
    if (topic === null) return 'UNSUBSCRIBE topic filter is not a valid MQTT string [MQTT-1.5.3]';
    const invalid = topicFilterSyntaxError(topic);
    if (invalid !== null) return `UNSUBSCRIBE: ${invalid}`;
    unsubscriptions.push(topic);
  }
  packet.unsubscriptions = unsubscriptions;
  return null;
}
