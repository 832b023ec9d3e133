import mqttPacket from 'mqtt-packet';
import { installStrictParser, type MqttPacketParser } from './parser';
import { decodeMqttString, isValidMqttString } from './strings';
import { MAX_TOPIC_LEVELS, validateTopicFilter, validateTopicName } from './topics';
import { validateConnect } from './validate-connect';

const bytes = (hex: string) => Buffer.from(hex.replace(/ /g, ''), 'hex');

describe('MQTT strings [MQTT-1.5.3]', () => {
  it.each([
    ['ASCII', '746f706963', 'topic'],
    ['two-byte', '74c3a9', 'té'],
    ['four-byte', 'f09f9880', '😀'],
    ['U+FFFD written out', 'efbfbd', '\ufffd'],
  ])('accepts %s', (_name, hex, text) => {
    expect(decodeMqttString(bytes(hex))).toBe(text);
  });

  it.each([
    ['U+0000 [MQTT-1.5.3-2]', '746f700000'],
    ['a UTF-16 surrogate U+D800 [MQTT-1.5.3-1]', '746feda080'],
    ['an overlong encoding', 'c0af'],
    ['a truncated sequence', '74e282'],
    ['a lone continuation byte', '7480'],
    ['U+0001 (control)', '746f700170'],
    ['U+001F (control)', '746f701f70'],
    ['U+007F (control)', '746f707f70'],
    ['U+009F (control)', '746fc29f70'],
    ['U+FFFF (non-character)', '746fefbfbf'],
    ['U+FDD0 (non-character)', 'efb790'],
    ['U+1FFFE (non-character)', 'f09fbfbe'],
  ])('refuses %s', (_name, hex) => {
    expect(decodeMqttString(bytes(hex))).toBeNull();
  });

  it('checks strings that did not come off the wire', () => {
    expect(isValidMqttString('a/b')).toBe(true);
    expect(isValidMqttString('a\u0000b')).toBe(false);
    expect(isValidMqttString('\ud800')).toBe(false);
    expect(isValidMqttString('x'.repeat(65536))).toBe(false);
  });
});

describe('topic names and filters [MQTT-4.7]', () => {
  it.each(['a', 'a/b', '/', 'a//b', '$SYS/x', 'sport/tennis/player1'])('name %p is valid', (t) => {
    expect(validateTopicName(t)).toBeNull();
  });
  it.each(['', 'a/+', 'a/#', '#', 'a+b', 'a\u0000b', 'a\u0001b'])('name %p is refused', (t) => {
    expect(validateTopicName(t)).not.toBeNull();
  });
  it.each(['#', '+', 'a/#', 'a/+/b', '+/+', '/#', 'a//+', '$SYS/#', 'a/b'])('filter %p is valid', (f) => {
    expect(validateTopicFilter(f)).toBeNull();
  });
  it.each(['', 'a#', 'a/#/b', 'a/b#', '#/a', 'a+', 'a/+b', '+a/b', 'a\u0000'])('filter %p is refused', (f) => {
    expect(validateTopicFilter(f)).not.toBeNull();
  });
  it(`allows ${MAX_TOPIC_LEVELS} levels and no more`, () => {
    expect(validateTopicName('/'.repeat(MAX_TOPIC_LEVELS - 1))).toBeNull();
    expect(validateTopicName('/'.repeat(MAX_TOPIC_LEVELS))).not.toBeNull();
    expect(validateTopicFilter('+/'.repeat(MAX_TOPIC_LEVELS - 1) + '#')).toBeNull();
    expect(validateTopicFilter('+/'.repeat(MAX_TOPIC_LEVELS) + '#')).not.toBeNull();
  });
});

describe('validateConnect', () => {
  const v311 = { protocolId: 'MQTT', protocolVersion: 4, clientId: 'c', clean: true };
  it('accepts MQTT 3.1.1 and MQTT 3.1', () => {
    expect(validateConnect(v311)).toBeNull();
    expect(validateConnect({ ...v311, protocolId: 'MQIsdp', protocolVersion: 3 })).toBeNull();
  });
  it.each([
    ['MQTT level 2', { protocolVersion: 2 }],
    ['MQTT level 6', { protocolVersion: 6 }],
    ['MQTT 5 (aedes 1.x has none)', { protocolVersion: 5 }],
    ['MQTT with level 3', { protocolVersion: 3 }],
    ['MQIsdp with level 4', { protocolId: 'MQIsdp' }],
  ])('answers CONNACK 1 to %s [MQTT-3.1.2-2]', (_name, fields) => {
    expect(validateConnect({ ...v311, ...fields })).toEqual({ action: 'connack', returnCode: 1 });
  });
  it('answers CONNACK 2 to an empty client id without clean session [MQTT-3.1.3-8], and in MQTT 3.1', () => {
    expect(validateConnect({ ...v311, clientId: '' })).toBeNull();
    expect(validateConnect({ ...v311, clientId: '', clean: false })).toEqual({ action: 'connack', returnCode: 2 });
    expect(validateConnect({ ...v311, protocolId: 'MQIsdp', protocolVersion: 3, clientId: '' })).toEqual({ action: 'connack', returnCode: 2 });
  });
  it.each(['', 'a/#', 'a/+'])('closes on will topic %p [MQTT-3.1.3-11]', (topic) => {
    expect(validateConnect({ ...v311, will: { topic } })).toEqual({ action: 'close' });
  });
});

describe('the strict reader', () => {
  const fresh = () => {
    const parser = mqttPacket.parser() as unknown as MqttPacketParser;
    const packets: Record<string, unknown>[] = [];
    parser.on('packet', (p) => packets.push(p));
    return { parser, packets };
  };

  it("buffers in bl's plain BufferList, not the Duplex stream mqtt-packet makes (~1 KB per connection)", () => {
    const { parser } = fresh();
    const isStream = () => typeof (parser._list as unknown as { pipe?: unknown }).pipe === 'function';
    expect(isStream()).toBe(true);
    installStrictParser(parser, { maxPacketSize: 1024, maxPacketSizeBeforeConnect: 1024 });
    expect(isStream()).toBe(false);
    expect(parser._list.length).toBe(0);
  });

  it('reads packets that arrive a byte at a time and several in one chunk', () => {
    const { parser, packets } = fresh();
    installStrictParser(parser, { maxPacketSize: 1024, maxPacketSizeBeforeConnect: 1024 });
    const connect = mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId: 'c1', clean: true, keepalive: 30, username: 'acme:d1', password: Buffer.from('pw') });
    const publish = mqttPacket.generate({ cmd: 'publish', topic: 'a/b', payload: Buffer.from('hello'), qos: 1, messageId: 7, retain: false, dup: false });
    for (const byte of connect) (parser as unknown as { parse(b: Buffer): number }).parse(Buffer.from([byte]));
    (parser as unknown as { parse(b: Buffer): number }).parse(Buffer.concat([publish, publish]));
    expect(parser.error).toBeNull();
    expect(packets).toHaveLength(3);
    expect(packets[0]).toMatchObject({ cmd: 'connect', clientId: 'c1', username: 'acme:d1', keepalive: 30 });
    expect(packets[2]).toMatchObject({ cmd: 'publish', topic: 'a/b', messageId: 7, qos: 1 });
    expect((packets[2].payload as Buffer).toString()).toBe('hello');
    expect(parser._list.length).toBe(0);
  });
});
