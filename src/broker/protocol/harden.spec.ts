import { once } from 'node:events';
import { createServer, connect, Socket, type AddressInfo } from 'node:net';
import mqtt, { type IPublishPacket, type Packet } from 'mqtt-packet';
import { RawClient, startBareBroker, type BareBroker } from '../../../test/helpers/raw-mqtt';
import { BUSY_TURN_PACKETS, BUSY_TURNS_IN_A_ROW, coalesceWrites, droppedMessages, hardenClient, setMaxPacketSize, type HardenableClient, type HardenOptions } from './harden';
import { MAX_TOPIC_LEVELS } from './topics';
import { validateConnect } from './validate-connect';

jest.setTimeout(30_000);

const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');
const CONNECT_OK = hex('10 0D 0004 4D515454 04 02 000A 0001 70');

/** bare aedes + our layer, wired the way the broker service wires it */
async function hardenedBroker(options: Partial<HardenOptions> = {}): Promise<BareBroker & { clients: HardenableClient[] }> {
  const clients: HardenableClient[] = [];
  const b = await startBareBroker(
    {
      maxClientsIdLength: 65535,
      maxTopicLevels: MAX_TOPIC_LEVELS + 1,
      preConnect(client, packet, done) {
        const verdict = validateConnect(packet);
        if (verdict?.action === 'close') return done(new Error('invalid CONNECT'), false);
        (client as unknown as { verdict?: number }).verdict = verdict?.returnCode;
        done(null, true);
      },
      authenticate(client, _u, _p, done) {
        const verdict = (client as unknown as { verdict?: number }).verdict;
        if (verdict !== undefined) return done(Object.assign(new Error('refused'), { returnCode: verdict as never }), false);
        done(null, true);
      },
      authorizeSubscribe(_client, sub, done) {
        done(null, sub.topic === 'test/nosubscribe' ? null : sub);
      },
    },
    (client) => {
      const c = client as unknown as HardenableClient;
      hardenClient(c, { maxPacketSize: 256 * 1024, maxPacketSizeBeforeConnect: 65536, connectTimeoutMs: 10_000, ...options });
      clients.push(c);
    },
  );
  return Object.assign(b, { clients });
}

describe('hardenClient: the strict reader', () => {
  let b: BareBroker & { clients: HardenableClient[] };
  beforeAll(async () => {
    b = await hardenedBroker();
  });
  afterAll(async () => {
    await b.close();
  });

  /** sends a CONNECT (default: a valid one) then `packet`; true when the broker hangs up */
  async function closes(packet: string, connect: Buffer | null = CONNECT_OK): Promise<boolean> {
    const c = await RawClient.open(b.port);
    try {
      if (connect) {
        c.send(connect);
        expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
      }
      c.send(hex(packet));
      return await c.closesWithin(1500);
    } finally {
      c.end();
    }
  }

  it.each([
    ['a first packet that is not a CONNECT [MQTT-3.1.0-1]', '82 06 0001 0001 70 00', null],
    ['a second CONNECT [MQTT-3.1.0-2]', '10 0D 0004 4D515454 04 02 000A 0001 70', CONNECT_OK],
    ['CONNECT header flags set [MQTT-2.2.2-2]', '14 0D 0004 4D515454 04 02 000A 0001 70', null],
    ['CONNECT reserved flag set [MQTT-3.1.2-3]', '10 0D 0004 4D515454 04 03 000A 0001 70', null],
    ['will QoS 3 [MQTT-3.1.2-14]', '10 13 0004 4D515454 04 1E 000A 0001 70 0001 70 0001 70', null],
    ['password without user name [MQTT-3.1.2-22]', '10 10 0004 4D515454 04 42 000A 0001 70 0001 70', null],
    ['bytes after the CONNECT payload [MQTT-3.1.2-18]', '10 10 0004 4D515454 04 02 000A 0001 70 0001 70', null],
    ['a client id with U+0000 [MQTT-1.5.3-2]', '10 11 0004 4D515454 04 02 000A 0005 746F700000', null],
    ['a user name with a control character', '10 14 0004 4D515454 04 82 000A 0001 70 0005 746F700170', null],
    ['a will topic with a surrogate [MQTT-1.5.3-1]', '10 17 0004 4D515454 04 06 000A 0001 70 0005 746FEDA080 0001 70', null],
    ['an unknown protocol name [MQTT-3.1.2-1]', '10 0D 0004 4D515459 04 02 000A 0001 70', null],
    ['an empty will topic', '10 12 0004 4D515454 04 06 000A 0001 70 0000 0001 70', null],
    ['PUBLISH QoS 0 with DUP [MQTT-3.3.1-2]', '38 0E 0005 746F706963 7061796C6F6164', CONNECT_OK],
    ['PUBLISH with QoS 3 [MQTT-3.3.1-4]', '36 10 0005 746F706963 0001 7061796C6F6164', CONNECT_OK],
    ['PUBLISH with packet id 0 [MQTT-2.3.1-1]', '32 10 0005 746F706963 0000 7061796C6F6164', CONNECT_OK],
    ['PUBLISH topic with a wildcard [MQTT-3.3.2-2]', '30 09 0003 612F23 7061796C', CONNECT_OK],
    ['PUBLISH topic with U+FFFF', '30 0E 0005 746FEFBFBF 7061796C6F6164', CONNECT_OK],
    ['SUBSCRIBE with wrong header flags [MQTT-3.8.1-1]', '80 06 0001 0001 70 00', CONNECT_OK],
    ['SUBSCRIBE without a filter [MQTT-3.8.3-3]', '82 02 0001', CONNECT_OK],
    ['SUBSCRIBE with reserved QoS bits [MQTT-3-8.3-4]', '82 06 0001 0001 70 04', CONNECT_OK],
    ['SUBSCRIBE with an invalid filter [MQTT-4.7.1-2]', '82 07 0001 0002 2361 00', CONNECT_OK],
    ['SUBSCRIBE filter with U+D800', '82 0A 1234 0005 746FEDA080 00', CONNECT_OK],
    ['UNSUBSCRIBE without a filter [MQTT-3.10.3-2]', 'A2 02 1234', CONNECT_OK],
    ['UNSUBSCRIBE filter with U+0000', 'A2 09 1234 0005 746F700000', CONNECT_OK],
    ['PUBACK too long', '40 03 0001 00', CONNECT_OK],
    ['PUBACK too short', '40 01 01', CONNECT_OK],
    ['PUBREC with packet id 0', '50 02 0000', CONNECT_OK],
    ['PUBREL with wrong flags', '60 02 0001', CONNECT_OK],
    ['PINGREQ with a body', 'C0 01 00', CONNECT_OK],
    ['DISCONNECT with a body', 'E0 01 00', CONNECT_OK],
    ['a CONNACK from a client', '20 02 00 00', CONNECT_OK],
    ['a remaining length of five bytes', '30 FF FF FF FF 01', CONNECT_OK],
  ])('closes on %s', async (_name, packet, connect) => {
    expect(await closes(packet, connect)).toBe(true);
  });

  it.each([
    ['an unsupported protocol level', '10 0D 0004 4D515454 06 02 000A 0001 70', 1],
    ['MQTT 5', '10 0E 0004 4D515454 05 02 000A 00 0001 70', 1],
    ['MQIsdp level 2', '10 0F 0006 4D5149736470 02 02 000A 0001 70', 1],
    ['an empty client id without clean session [MQTT-3.1.3-8]', '10 0C 0004 4D515454 04 00 000A 0000', 2],
    ['an empty MQTT 3.1 client id', '10 0E 0006 4D5149736470 03 02 000A 0000', 2],
  ])('answers CONNACK %s with its return code, then closes', async (_name, packet, rc) => {
    const c = await RawClient.open(b.port);
    c.send(hex(packet));
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: rc });
    expect(await c.closesWithin(1500)).toBe(true);
  });

  it.each([
    ['MQTT 3.1 with its lax header and connect flags', '14 0F 0006 4D5149736470 03 01 000A 0001 70'],
    ['MQTT 3.1 with a 30-character client id', '10 2C 0006 4D5149736470 03 02 000A 001E ' + '61'.repeat(30)],
    ['an empty client id with clean session', '10 0C 0004 4D515454 04 02 000A 0000'],
    ['an empty user name', '10 0F 0004 4D515454 04 82 000A 0001 70 0000'],
    ['a password with U+0000 (binary data)', '10 17 0004 4D515454 04 C2 000A 0001 70 0001 70 0005 746F700000'],
  ])('accepts %s', async (_name, packet) => {
    const c = await RawClient.open(b.port);
    c.send(hex(packet));
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    c.send({ cmd: 'pingreq' });
    expect(await c.next()).toMatchObject({ cmd: 'pingresp' });
    c.end();
  });

  it('keeps the protocol level of the CONNECT for the later packets, not the CONNECT and its password', async () => {
    const c = await RawClient.open(b.port);
    c.send(hex('10 17 0004 4D515454 04 C2 000A 0001 70 0001 70 0005 746F700000'));
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    const mine = b.clients.find((x) => (x.conn as Socket).remotePort === c.socket.localPort) as HardenableClient;
    const parser = mine._parser as { settings: Record<string, unknown> };
    expect(parser.settings).toEqual({ protocolVersion: 4, bridgeMode: false });
    c.end();
  });

  it('coalesces the writes of every TCP connection (coalesceWrites, tested below)', async () => {
    const { client } = await RawClient.connected(b.port);
    try {
      const conn = b.clients.at(-1)?.conn as Socket;
      expect(conn).toBeInstanceOf(Socket);
      expect(conn.cork).not.toBe(Socket.prototype.cork);
    } finally {
      client.end();
    }
  });

  it('keeps the connection on an unsolicited but well-formed acknowledgement', async () => {
    expect(await closes('40 02 0001')).toBe(false);
    expect(await closes('70 02 0001')).toBe(false);
  });

  it('accepts MQTT 3.1 PUBREL with the DUP flag its clients set', async () => {
    const c = await RawClient.open(b.port);
    c.send(hex('10 0F 0006 4D5149736470 03 02 000A 0001 70'));
    expect(await c.next()).toMatchObject({ cmd: 'connack', returnCode: 0 });
    c.send(hex('6A 02 0001'));
    expect(await c.next()).toMatchObject({ cmd: 'pubcomp', messageId: 1 });
    c.end();
  });

  it('refuses a packet over the limit as soon as its length is read, before its body', async () => {
    const c = await RawClient.open(b.port);
    // a CONNECT announcing 70,000 bytes: over the 64 KiB allowed before CONNECT; nothing follows
    c.send(Buffer.from([0x10, 0xf0, 0xa2, 0x04]));
    expect(await c.closesWithin(1500)).toBe(true);

    const { client } = await RawClient.connected(b.port);
    client.send(mqtt.generate({ cmd: 'publish', topic: 'big', payload: Buffer.alloc(100_000), qos: 0, retain: false, dup: false }));
    client.send({ cmd: 'pingreq' });
    expect(await client.next()).toMatchObject({ cmd: 'pingresp' }); // 100 kB is fine once connected
    client.send(Buffer.from([0x30, 0x80, 0x80, 0x14])); // announces 327,680 bytes (> 256 KiB)
    expect(await client.closesWithin(1500)).toBe(true);
  });

  it('applies a tighter limit set after authentication', async () => {
    const { client } = await RawClient.connected(b.port);
    setMaxPacketSize(b.clients[b.clients.length - 1], 1024);
    client.send(mqtt.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(900), qos: 0, retain: false, dup: false }));
    client.send({ cmd: 'pingreq' });
    expect(await client.next()).toMatchObject({ cmd: 'pingresp' });
    client.send(mqtt.generate({ cmd: 'publish', topic: 't', payload: Buffer.alloc(2000), qos: 0, retain: false, dup: false }));
    expect(await client.closesWithin(1500)).toBe(true);
  });
});

describe('hardenClient: deadlines and slow clients', () => {
  it('closes a connection that has not sent a whole CONNECT in time (slow loris)', async () => {
    const b = await hardenedBroker({ connectTimeoutMs: 400 });
    try {
      const idle = await RawClient.open(b.port);
      const loris = await RawClient.open(b.port);
      const started = Date.now();
      let i = 0;
      const drip = setInterval(() => {
        if (i < CONNECT_OK.length) loris.send(CONNECT_OK.subarray(i, ++i));
      }, 100);
      expect(await idle.closesWithin(2000)).toBe(true);
      expect(await loris.closesWithin(2000)).toBe(true);
      clearInterval(drip);
      expect(Date.now() - started).toBeLessThan(1500);
      // a prompt client is not affected
      const { client } = await RawClient.connected(b.port);
      await new Promise((r) => setTimeout(r, 600));
      client.send({ cmd: 'pingreq' });
      expect(await client.next()).toMatchObject({ cmd: 'pingresp' });
      client.end();
    } finally {
      await b.close();
    }
  });

  it('drops QoS 0 for a client that does not read, disconnects it, and keeps serving the others', async () => {
    const drops: string[] = [];
    const b = await hardenedBroker({
      maxQueuedBytes: 64 * 1024,
      slowConsumerTimeoutMs: 500,
      onDrop: (_c, reason) => drops.push(reason),
    });
    try {
      const { client: stuck } = await RawClient.connected(b.port, { clientId: 'stuck' });
      stuck.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: 0 }] });
      await stuck.next();
      stuck.socket.pause();
      const { client: healthy } = await RawClient.connected(b.port, { clientId: 'healthy' });
      healthy.send({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'load/#', qos: 0 }] });
      await healthy.next();
      let received = 0;
      const { client: pub } = await RawClient.connected(b.port, { clientId: 'pub' });
      const payload = Buffer.alloc(4000, 7); // 12 MB in all: more than loopback TCP buffers absorb
      const sent = 3000;
      // bursts of 40 KB, each read by the healthy client before the next: it never has more than
      // the 64 KiB limit unsent, however slow this machine is, while the stuck one gets it all
      const burst = 10;
      for (let i = 0; i < sent; i += burst) {
        pub.send(Buffer.concat(Array.from({ length: burst }, (_, k) => mqtt.generate({ cmd: 'publish', topic: `load/${i + k}`, payload, qos: 0, retain: false, dup: false }))));
        while (received < i + burst) {
          const packet = await healthy.next(5000);
          if (packet.cmd === 'publish') received++;
        }
      }
      expect(received).toBe(sent);
      const stuckClient = b.clients.find((c) => (c as unknown as { id: string }).id === 'stuck') as HardenableClient;
      // disconnected on the broker's side (the paused socket itself notices once it reads again)
      const until = Date.now() + 5000;
      while (!stuckClient.closed && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      expect(stuckClient.closed).toBe(true);
      stuck.socket.resume();
      expect(await stuck.closesWithin(5000)).toBe(true);
      expect(droppedMessages(stuckClient)).toBeGreaterThan(0);
      expect(drops).toContain('slow_consumer_qos0');
      expect(drops).toContain('slow_consumer_disconnected');
      // the broker-wide emitter never backed up behind the stuck client
      expect(b.queued()).toBe(0);
      const last = (await (async () => {
        pub.send({ cmd: 'publish', topic: 'load/after', payload: 'x', qos: 0 });
        return healthy.next();
      })()) as IPublishPacket;
      expect(last.topic).toBe('load/after');
      for (const c of [healthy, pub]) c.end();
    } finally {
      await b.close();
    }
  });
});

describe('coalesceWrites', () => {
  /** a connected TCP pair: `server` is the broker's end */
  async function socketPair(): Promise<{ server: Socket; client: Socket; close(): void }> {
    const listener = createServer();
    listener.listen(0, '127.0.0.1');
    await once(listener, 'listening');
    const accepted = once(listener, 'connection');
    const client = connect((listener.address() as AddressInfo).port, '127.0.0.1');
    const [server] = (await accepted) as [Socket];
    return {
      server,
      client,
      close: () => {
        client.destroy();
        server.destroy();
        listener.close();
      },
    };
  }

  const publish = (n: number) => ({ cmd: 'publish', topic: `t/${n}`, payload: Buffer.from(`m${n}`), qos: 0, retain: false, dup: false }) as const;

  /** writes `count` packets the way aedes does (mqtt-packet), each from a tick after the previous one's uncork */
  function writeInSuccessiveTicks(socket: Socket, count: number, n = 0): void {
    mqtt.writeToStream(publish(n) as never, socket);
    if (n + 1 < count) process.nextTick(() => process.nextTick(() => writeInSuccessiveTicks(socket, count, n + 1)));
  }

  function receive(socket: Socket, count: number): Promise<Packet[]> {
    return new Promise((resolve) => {
      const packets: Packet[] = [];
      const parser = mqtt.parser();
      parser.on('packet', (p: Packet) => packets.push(p));
      const onData = (data: Buffer): void => {
        parser.parse(data);
        if (packets.length < count) return;
        socket.off('data', onData);
        resolve(packets);
      };
      socket.on('data', onData);
    });
  }

  /** a turn with BUSY_TURN_PACKETS packets or more (on another socket): the next turn holds its writes */
  async function busyTurn(): Promise<void> {
    const other = await socketPair();
    try {
      coalesceWrites(other.server);
      const received = receive(other.client, BUSY_TURN_PACKETS);
      for (let i = 0; i < BUSY_TURN_PACKETS; i++) mqtt.writeToStream(publish(i) as never, other.server);
      // the busy turn's own end comes before the data arrives: the turn after it is the held one
      await new Promise((resolve) => setImmediate(resolve));
      await received;
    } finally {
      other.close();
    }
  }

  it('on a busy broker, sends the packets of one turn in one system call, in order', async () => {
    const { server, client, close } = await socketPair();
    try {
      coalesceWrites(server);
      const writev = jest.spyOn(server as unknown as { _writev: () => void }, '_writev');
      const write = jest.spyOn(server as unknown as { _write: () => void }, '_write');
      // busy stays set until a turn with writes ends: the next write is this socket's
      for (let i = 0; i < BUSY_TURNS_IN_A_ROW; i++) await busyTurn();
      const packets = receive(client, 5);
      writeInSuccessiveTicks(server, 5);
      expect((await packets).map((p) => (p as IPublishPacket).topic)).toEqual(['t/0', 't/1', 't/2', 't/3', 't/4']);
      expect(writev).toHaveBeenCalledTimes(1);
      expect(write).not.toHaveBeenCalled();
    } finally {
      close();
    }
  });

  /** system calls for three packets written in successive ticks, after a turn that was not busy */
  async function systemCallsForThreePackets(coalesce: boolean): Promise<number> {
    const { server, client, close } = await socketPair();
    try {
      if (coalesce) coalesceWrites(server);
      const writev = jest.spyOn(server as unknown as { _writev: () => void }, '_writev');
      // a turn still ending (endTurn pending) ends before our writes, which then start a turn of their own
      await new Promise((resolve) => setImmediate(resolve));
      const received = receive(client, 3);
      writeInSuccessiveTicks(server, 3);
      await received;
      return writev.mock.calls.length;
    } finally {
      close();
    }
  }

  it('on a quiet broker, holds nothing: each packet goes out as soon as mqtt-packet sends it', async () => {
    expect(await systemCallsForThreePackets(true)).toBe(3);
  });

  it('after a single busy turn (a burst, not a busy broker), holds nothing', async () => {
    expect(BUSY_TURNS_IN_A_ROW).toBeGreaterThan(1);
    // a turn that writes, not busy: whatever came before no longer counts
    await systemCallsForThreePackets(true);
    for (let i = 0; i < BUSY_TURNS_IN_A_ROW - 1; i++) await busyTurn();
    const { server, client, close } = await socketPair();
    try {
      coalesceWrites(server);
      const writev = jest.spyOn(server as unknown as { _writev: () => void }, '_writev');
      const received = receive(client, 3);
      writeInSuccessiveTicks(server, 3);
      await received;
      expect(writev).toHaveBeenCalledTimes(3);
    } finally {
      close();
    }
  });

  it('without it, mqtt-packet alone makes one system call per packet (what it saves)', async () => {
    expect(await systemCallsForThreePackets(false)).toBe(3);
  });

  it('loses nothing written before the socket is ended in the same turn', async () => {
    const { server, client, close } = await socketPair();
    try {
      coalesceWrites(server);
      const received = receive(client, 2);
      mqtt.writeToStream(publish(0) as never, server);
      mqtt.writeToStream(publish(1) as never, server);
      server.end();
      expect((await received).map((p) => (p as IPublishPacket).topic)).toEqual(['t/0', 't/1']);
      await once(client, 'end');
    } finally {
      close();
    }
  });
});
