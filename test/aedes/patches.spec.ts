/**
 * The defects fixed by patches/aedes+1.2.0.patch, patches/mqemitter+7.1.0.patch and
 * patches/aedes-persistence+11.0.0.patch, each shown on a bare aedes (no tenancy, none of our
 * hooks). Every test here fails on the unpatched packages; docs/conformance.md describes each
 * patch.
 */
import mqemitter from 'mqemitter';
import mqtt, { type IPublishPacket, type ISubackPacket, type Packet } from 'mqtt-packet';
import { RawClient, startBareBroker, type BareBroker } from '../helpers/raw-mqtt';

jest.setTimeout(30_000);

const publishes = (packets: Packet[]) => packets.filter((p): p is IPublishPacket => p.cmd === 'publish');

async function subscribe(client: RawClient, topic: string, qos: 0 | 1 | 2, messageId = 1): Promise<ISubackPacket> {
  client.send({ cmd: 'subscribe', messageId, subscriptions: [{ topic, qos }] });
  const suback = (await client.next()) as ISubackPacket;
  expect(suback.cmd).toBe('suback');
  return suback;
}

async function publishQos1(client: RawClient, topic: string, payload: string, retain = false, messageId = 7): Promise<void> {
  client.send({ cmd: 'publish', topic, payload, qos: 1, messageId, retain });
  const ack = await client.next();
  expect(ack).toMatchObject({ cmd: 'puback', messageId });
}

describe('aedes patches', () => {
  let b: BareBroker;
  const clients: RawClient[] = [];
  const open = async (connect: Parameters<typeof RawClient.connected>[1] = {}) => {
    const r = await RawClient.connected(b.port, connect);
    clients.push(r.client);
    return r;
  };

  beforeEach(async () => {
    b = await startBareBroker();
  });
  afterEach(async () => {
    for (const c of clients.splice(0)) c.end();
    await b.close();
  });

  it('never delivers above the QoS granted to a wildcard subscription [MQTT-3.8.4-6]', async () => {
    const { client: sub } = await open();
    await subscribe(sub, 'w/+', 1);
    const { client: pub } = await open();
    pub.send({ cmd: 'publish', topic: 'w/a', payload: 'x', qos: 2, messageId: 3 });
    const msg = (await sub.next()) as IPublishPacket;
    expect(msg).toMatchObject({ cmd: 'publish', topic: 'w/a', qos: 1 });
  });

  it('delivers once, at the highest QoS granted, to overlapping subscriptions [MQTT-3.3.5-1]', async () => {
    const { client: sub } = await open();
    await subscribe(sub, 'o/#', 0, 1);
    await subscribe(sub, 'o/b', 2, 2);
    const { client: pub } = await open();
    pub.send({ cmd: 'publish', topic: 'o/b', payload: 'x', qos: 2, messageId: 3 });
    const got = publishes(await sub.drain(400));
    expect(got.map((p) => p.qos)).toEqual([2]);
  });

  it('sends retained messages at the lower of their QoS and the QoS granted [MQTT-3.8.4-6]', async () => {
    const { client: pub } = await open();
    await publishQos1(pub, 'r/a', 'kept', true);
    const { client: sub } = await open();
    await subscribe(sub, 'r/#', 0);
    const msg = (await sub.next()) as IPublishPacket;
    expect(msg).toMatchObject({ topic: 'r/a', retain: true, qos: 0 });
  });

  it("matches an empty level with '+' for retained messages too [MQTT-4.7.1-3]", async () => {
    const { client: pub } = await open();
    await publishQos1(pub, 'e/', 'kept', true);
    const { client: sub } = await open();
    await subscribe(sub, 'e/+', 0);
    const msg = (await sub.next()) as IPublishPacket;
    expect(msg).toMatchObject({ topic: 'e/', retain: true });
  });

  it('sends retained messages in topic order, a topic before its subtopics', async () => {
    const { client: pub } = await open();
    await publishQos1(pub, 't/1/2/3', 'c', true, 1);
    await publishQos1(pub, 't/1/2', 'b', true, 2);
    await publishQos1(pub, 't/1', 'a', true, 3);
    const { client: sub } = await open();
    await subscribe(sub, 't/#', 0);
    const got = publishes(await sub.drain(400)).map((p) => p.topic);
    expect(got).toEqual(['t/1', 't/1/2', 't/1/2/3']);
  });

  it('sets DUP on a QoS 1 message sent again after a reconnect, with the same packet id [MQTT-3.3.1-1]', async () => {
    const { client: sub } = await open({ clientId: 'dup-sub', clean: false });
    await subscribe(sub, 'd/x', 1);
    const { client: pub } = await open();
    await publishQos1(pub, 'd/x', 'once');
    const first = (await sub.next()) as IPublishPacket;
    expect(first).toMatchObject({ topic: 'd/x', qos: 1, dup: false });
    sub.end(); // no PUBACK
    const { client: again, connack } = await open({ clientId: 'dup-sub', clean: false });
    expect(connack.sessionPresent).toBe(true);
    const resent = (await again.next()) as IPublishPacket;
    expect(resent).toMatchObject({ topic: 'd/x', qos: 1, dup: true, messageId: first.messageId });
  });

  it('replays the offline queue at CONNECT without an AbortController per connection', async () => {
    // stream.pipeline aborts an AbortController when it ends, building an AbortError with a stack
    // trace: about a tenth of a connect's CPU, once per CONNECT
    const abort = jest.spyOn(AbortController.prototype, 'abort');
    try {
      const { client: sub } = await open({ clientId: 'queue-sub', clean: false });
      await subscribe(sub, 'q/x', 1);
      const gone = new Promise((resolve) => b.broker.once('clientDisconnect', resolve));
      sub.send({ cmd: 'disconnect' });
      await gone;
      const { client: pub } = await open();
      await publishQos1(pub, 'q/x', 'while away');
      const { client: again, connack } = await open({ clientId: 'queue-sub', clean: false });
      expect(connack.sessionPresent).toBe(true);
      const queued = (await again.next()) as IPublishPacket;
      expect(queued).toMatchObject({ topic: 'q/x', qos: 1 });
      expect(queued.payload.toString()).toBe('while away');
      expect(abort).not.toHaveBeenCalled();
    } finally {
      abort.mockRestore();
    }
  });

  it('does not pass an incoming DUP flag on to subscribers [MQTT-3.3.1-3]', async () => {
    const { client: sub } = await open();
    await subscribe(sub, 'f/x', 1);
    const { client: pub } = await open();
    pub.send({ cmd: 'publish', topic: 'f/x', payload: 'x', qos: 1, messageId: 9, dup: true });
    const msg = (await sub.next()) as IPublishPacket;
    expect(msg.dup).toBe(false);
  });

  it('reports a persistent session without subscriptions as present [MQTT-3.2.2-2]', async () => {
    const { client } = await open({ clientId: 'bare-session', clean: false });
    client.end();
    await new Promise((r) => setTimeout(r, 50));
    const { connack } = await open({ clientId: 'bare-session', clean: false });
    expect(connack.sessionPresent).toBe(true);
    // and a clean session ends it [MQTT-3.1.2-6]
    (await open({ clientId: 'bare-session', clean: true })).client.end();
    await new Promise((r) => setTimeout(r, 50));
    const { connack: fresh } = await open({ clientId: 'bare-session', clean: false });
    expect(fresh.sessionPresent).toBe(false);
  });

  it('never sets session present for MQTT 3.1, whose CONNACK byte is reserved', async () => {
    const { client } = await open({ clientId: 'v31', clean: false, protocolId: 'MQIsdp', protocolVersion: 3 });
    await subscribe(client, 'v/x', 1);
    client.end();
    await new Promise((r) => setTimeout(r, 50));
    const { connack } = await open({ clientId: 'v31', clean: false, protocolId: 'MQIsdp', protocolVersion: 3 });
    expect(connack.sessionPresent).toBe(false);
  });

  it('does not publish the will when a persistent session is taken over by its own client', async () => {
    const { client: watcher } = await open();
    await subscribe(watcher, 'will/t', 0);
    const will = { topic: 'will/t', payload: Buffer.from('gone'), qos: 0 as const, retain: false };
    await open({ clientId: 'taken', clean: false, will });
    await open({ clientId: 'taken', clean: false });
    expect(publishes(await watcher.drain(400))).toEqual([]);
    // a clean takeover still publishes it
    await open({ clientId: 'taken2', clean: true, will });
    await open({ clientId: 'taken2', clean: true });
    expect(publishes(await watcher.drain(400)).map((p) => String(p.payload))).toEqual(['gone']);
  });

  it('answers PUBREC before forwarding a QoS 2 message to its own publisher', async () => {
    const { client } = await open();
    await subscribe(client, 'self/q2', 2);
    client.send({ cmd: 'publish', topic: 'self/q2', payload: 'x', qos: 2, messageId: 5 });
    const first = await client.next();
    expect(first).toMatchObject({ cmd: 'pubrec', messageId: 5 });
  });

  it('sends PUBACK only once a retained QoS 1 message is stored [MQTT-4.3.2-2]', async () => {
    await b.close();
    b = await startBareBroker();
    const persistence = (b.broker as unknown as { persistence: unknown }).persistence as { storeRetained(p: unknown): Promise<void> };
    const store = persistence.storeRetained.bind(persistence);
    persistence.storeRetained = async (p) => {
      await new Promise((r) => setTimeout(r, 100));
      return store(p);
    };
    const { client } = await open();
    await publishQos1(client, 'slow/r', 'kept', true);
    await subscribe(client, 'slow/r', 0, 2);
    const msg = (await client.next()) as IPublishPacket;
    expect(msg).toMatchObject({ topic: 'slow/r', retain: true });
  });

  it('closes the connection on an acknowledgement of the wrong kind [MQTT-4.3.2][MQTT-4.3.3]', async () => {
    const { client: sub } = await open();
    await subscribe(sub, 'k/1', 1);
    const { client: pub } = await open();
    await publishQos1(pub, 'k/1', 'x');
    const msg = (await sub.next()) as IPublishPacket;
    sub.send({ cmd: 'pubrec', messageId: msg.messageId });
    expect(await sub.closesWithin(2000)).toBe(true);

    const { client: sub2 } = await open();
    await subscribe(sub2, 'k/2', 2);
    pub.send({ cmd: 'publish', topic: 'k/2', payload: 'x', qos: 2, messageId: 8 });
    const msg2 = (await sub2.next()) as IPublishPacket;
    sub2.send({ cmd: 'pubcomp', messageId: msg2.messageId }); // before any PUBREC
    expect(await sub2.closesWithin(2000)).toBe(true);
  });

  it('ignores an acknowledgement for a packet id it knows nothing about', async () => {
    const { client } = await open();
    client.send({ cmd: 'puback', messageId: 4242 });
    client.send({ cmd: 'pubrec', messageId: 4243 });
    expect(await client.next()).toMatchObject({ cmd: 'pubrel', messageId: 4243 });
    client.send({ cmd: 'pingreq' });
    expect(await client.next()).toMatchObject({ cmd: 'pingresp' });
  });

  it('loses no message when publishes reach the emitter out of order (retained and plain QoS 0)', async () => {
    const { client: sub } = await open();
    await subscribe(sub, 'ooo/#', 0);
    const { client: pub } = await open();
    const n = 100;
    const burst: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      burst.push(mqtt.generate({ cmd: 'publish', topic: 'ooo/r', payload: Buffer.from('r' + i), qos: 0, retain: true, dup: false }));
      burst.push(mqtt.generate({ cmd: 'publish', topic: 'ooo/p', payload: Buffer.from('p' + i), qos: 0, retain: false, dup: false }));
    }
    pub.send(Buffer.concat(burst));
    const deadline = Date.now() + 5000;
    let got = 0;
    while (got < 2 * n && Date.now() < deadline) got += publishes(await sub.drain(100)).length;
    expect(got).toBe(2 * n);
  });

  it('accepts topics as deep as maxTopicLevels beyond 100', async () => {
    await b.close();
    b = await startBareBroker({ maxTopicLevels: 202 });
    const { client } = await open();
    const deep = 'x/'.repeat(200) + 'y'; // 201 levels
    const suback = await subscribe(client, deep, 0);
    expect(suback.granted).toEqual([0]);
    client.send({ cmd: 'publish', topic: deep, payload: 'x', qos: 0 });
    expect(await client.next()).toMatchObject({ cmd: 'publish', topic: deep });
  });
});

describe('aedes write patch: onSocketFull', () => {
  // A subscriber that does not read fills its socket; unpatched, each live message then holds one
  // of the emitter's broker-wide slots until that socket drains, and the 101st message stalls
  // every client. With client.onSocketFull set, the slot is released on the next turn.
  const N = 1600; // × 8 kB: far more than loopback buffers absorb, and more than the 100 slots

  async function floodStuckSubscriber(setOnSocketFull: boolean, waitMs: number) {
    let fullCalls = 0;
    let published = 0;
    const b = await startBareBroker({}, (client) => {
      if (setOnSocketFull) (client as unknown as { onSocketFull: () => void }).onSocketFull = () => void fullCalls++;
    });
    let allPublished!: () => void;
    const done = new Promise<void>((r) => (allPublished = r));
    b.broker.on('publish', (packet) => {
      if (packet.topic.startsWith('full/') && ++published === N) allPublished();
    });
    try {
      const { client: sub } = await RawClient.connected(b.port, { clientId: 'stuck' });
      await subscribe(sub, 'full/#', 0);
      sub.socket.pause();
      const { client: pub } = await RawClient.connected(b.port, { clientId: 'pub' });
      const payload = Buffer.alloc(8000, 1);
      for (let i = 0; i < N; i += 50) {
        pub.send(Buffer.concat(Array.from({ length: 50 }, (_, k) => mqtt.generate({ cmd: 'publish', topic: `full/${i + k}`, payload, qos: 0, retain: false, dup: false }))));
        await new Promise((r) => setImmediate(r));
      }
      const timeout = new Promise<void>((r) => setTimeout(r, waitMs));
      await Promise.race([done, timeout]);
      const result = { fullCalls, published, queued: b.queued() };
      for (const c of [sub, pub]) c.end();
      return result;
    } finally {
      await b.close();
    }
  }

  it('releases the delivery slot of a live message at once when the embedder bounds the queue itself', async () => {
    const released = await floodStuckSubscriber(true, 10_000);
    expect(released.published).toBe(N);
    expect(released.fullCalls).toBeGreaterThan(0);
    expect(released.queued).toBe(0);
  });

  it('keeps the aedes default without it: the slots stay held until the socket drains', async () => {
    // the publisher's own reads wait for its publishes, which wait for the stuck socket
    const held = await floodStuckSubscriber(false, 1500);
    expect(held.fullCalls).toBe(0);
    expect(held.published).toBeLessThan(N);
  });
});

describe('mqemitter patch', () => {
  it('survives a QoS 0 flood whose clients disconnect with the backlog queued', async () => {
    const b = await startBareBroker();
    try {
      const { client: sub } = await RawClient.connected(b.port);
      await subscribe(sub, 'flood/#', 0);
      sub.socket.pause(); // a subscriber that cannot keep up
      const pubs: RawClient[] = [];
      for (let i = 0; i < 10; i++) pubs.push((await RawClient.connected(b.port)).client);
      const payload = Buffer.alloc(100, 1);
      const chunk = (i: number) =>
        Buffer.concat(Array.from({ length: 50 }, () => mqtt.generate({ cmd: 'publish', topic: `flood/${i}`, payload, qos: 0, retain: false, dup: false })));
      const until = Date.now() + 2500;
      while (Date.now() < until && b.queued() < 3000) {
        pubs.forEach((p, i) => p.send(chunk(i)));
        await new Promise((r) => setImmediate(r));
      }
      expect(b.queued()).toBeGreaterThan(1000);
      for (const c of [sub, ...pubs]) c.end();
      // unpatched: the queued messages find no listener, each release recursed into the next,
      // and the process died with "Maximum call stack size exceeded"
      const deadline = Date.now() + 10_000;
      while (b.queued() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(b.queued()).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('releases a backlog in arrival order without copying the queue per message', () => {
    // Array#shift copies the whole array once it holds a few thousand entries: a backlog of
    // publishers' read chunks then cost O(backlog) per message, and bare aedes and our service
    // both fell from 20k to ~6k msg/s in the bench soak and never drained
    const mq = mqemitter({ concurrency: 1 });
    const seen: number[] = [];
    const held: Array<() => void> = [];
    mq.on('q/#', (message, done) => {
      seen.push(message.n as number);
      held.push(done);
    });
    const backlog = 20_000;
    for (let n = 0; n < backlog; n++) mq.emit({ topic: 'q/x', n });
    const length = () => (mq as unknown as { length: number }).length;
    expect(length()).toBe(backlog - 1);

    const shift = Array.prototype.shift;
    let longShifts = 0;
    const spy = jest.spyOn(Array.prototype, 'shift').mockImplementation(function (this: unknown[]) {
      if (this.length > 1000) longShifts++;
      return shift.call(this);
    });
    try {
      let next = backlog;
      for (let i = 0; i < held.length; i++) {
        // new messages keep arriving while the backlog drains (and the queue compacts)
        if (i % 4 === 0 && next < backlog * 1.25) mq.emit({ topic: 'q/x', n: next++ });
        held[i]();
      }
      expect(length()).toBe(0);
      expect(seen).toEqual(Array.from({ length: next }, (_, n) => n));
    } finally {
      spy.mockRestore();
    }
    expect(longShifts).toBe(0);
  });
});
