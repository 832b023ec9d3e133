import net from 'node:net';
import mqttPacket, { Packet } from 'mqtt-packet';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { closedByServer, connect, connectRefused, subackCodes, TestClient } from '../helpers/mqtt';
import { parsePrometheus } from '../helpers/prometheus';

/**
 * Each per-tenant limit, with real clients: the tenant at its limit is refused, throttled or cut,
 * and a tenant with the defaults, connected at the same time, is not.
 */
describe(`tenant limits (${databaseKind()})`, () => {
  let app: TestApp;
  const open: TestClient[] = [];
  const pw = 'limits-password';

  const dev = async (slug: string, name: string, clientId?: string) => {
    const c = await connect(app.mqttPort, { username: `${slug}:${name}`, password: pw, ...(clientId ? { clientId } : {}) });
    open.push(c);
    return c;
  };

  const tenant = async (slug: string, limits: Record<string, number> = {}) => {
    await app.createTenant(slug, { limits });
    for (const name of ['d1', 'd2', 'd3']) await app.createDevice(slug, name, pw);
    await app.allow(slug);
  };

  const limitHits = async (slug: string, limit: string) => {
    const text = await (await fetch(`${app.http}/metrics`)).text();
    return parsePrometheus(text).value('mqtt_limit_hits_total', { tenant: slug, limit }) ?? 0;
  };

  beforeAll(async () => {
    app = await startTestApp();
    await tenant('free'); // the defaults: never at a limit here
  });

  afterEach(async () => {
    await Promise.all(open.splice(0).map((c) => c.end(true)));
  });

  afterAll(async () => {
    await app?.close();
  });

  it('maxConnections: CONNACK 3 over it, counted; other tenants still connect', async () => {
    await tenant('conn', { maxConnections: 2 });
    await dev('conn', 'd1');
    await dev('conn', 'd2');
    expect(await connectRefused(app.mqttPort, { username: 'conn:d3', password: pw })).toBe(3);
    for (let i = 0; i < 3; i++) await dev('free', 'd1', `free-${i}`);
    expect(await limitHits('conn', 'maxConnections')).toBe(1);
    const text = await (await fetch(`${app.http}/metrics`)).text();
    expect(parsePrometheus(text).value('mqtt_connects_total', { tenant: 'conn', result: 'max-connections' })).toBe(1);
    // a slot frees when a client leaves
    await open[0].end(true);
    await dev('conn', 'd3');
  });

  it('the limits follow PATCH /tenants/{slug} at once', async () => {
    await tenant('patched', { maxConnections: 1 });
    await dev('patched', 'd1');
    expect(await connectRefused(app.mqttPort, { username: 'patched:d2', password: pw })).toBe(3);
    const res = await app.api('PATCH', '/api/v1/tenants/patched', { limits: { maxConnections: 2 } });
    expect(res.status).toBe(200);
    expect(res.body.limits.maxConnections).toBe(2);
    await dev('patched', 'd2');
  });

  it('maxPayloadBytes: a bigger PUBLISH closes that connection only', async () => {
    await tenant('small', { maxPayloadBytes: 1024 });
    const watcher = await dev('small', 'd1');
    await watcher.subscribe('big/#');
    const big = await dev('small', 'd2');
    await big.publish('big/ok', 'x'.repeat(1024));
    expect((await watcher.next()).payload).toHaveLength(1024);
    big.client.publish('big/no', 'x'.repeat(1025), { qos: 0 });
    await closedByServer(big);
    expect(watcher.client.connected).toBe(true);

    const freeSub = await dev('free', 'd1');
    await freeSub.subscribe('big/#');
    const freePub = await dev('free', 'd2');
    await freePub.publish('big/ok', 'x'.repeat(100_000));
    expect((await freeSub.next()).payload).toHaveLength(100_000);
    expect(await limitHits('small', 'maxPayloadBytes')).toBe(1);
  });

  it('maxSubscriptionsPerClient: SUBACK 0x80 over it', async () => {
    await tenant('subs', { maxSubscriptionsPerClient: 2 });
    const c = await dev('subs', 'd1');
    expect(await subackCodes(c, ['s/1', 's/2', 's/3'])).toEqual([0, 0, 128]);
    // re-subscribing to a filter it holds is not a new subscription
    expect(await subackCodes(c, ['s/1'])).toEqual([0]);
    const f = await dev('free', 'd1');
    expect(await subackCodes(f, ['s/1', 's/2', 's/3'])).toEqual([0, 0, 0]);
    expect(await limitHits('subs', 'maxSubscriptionsPerClient')).toBe(1);
  });

  it('maxClientMessagesPerSecond: the client is held back, nothing is lost, and other tenants flow', async () => {
    await tenant('slow', { maxClientMessagesPerSecond: 10 });
    const slowSub = await dev('slow', 'd1');
    await slowSub.subscribe('r/#', 0);
    const slowPub = await dev('slow', 'd2');
    const freeSub = await dev('free', 'd1');
    await freeSub.subscribe('r/#', 0);
    const freePub = await dev('free', 'd2');

    // 10 pass at once (a second's budget), the other 20 at 10 per second: about 2 s
    const n = 30;
    for (let i = 0; i < n; i++) slowPub.client.publish('r/slow', `s${i}`, { qos: 0 });
    await slowSub.next((m) => m.payload === 's0');
    for (let i = 0; i < n; i++) await freePub.publish('r/free', `f${i}`, { qos: 1 });
    await freeSub.next((m) => m.payload === `f${n - 1}`);
    // the other tenant got all of its messages while this one was still being held back
    expect(freeSub.received).toHaveLength(n);
    expect(slowSub.received.length).toBeLessThan(n);
    // and nothing of the held-back client is lost, in order
    await slowSub.next((m) => m.payload === `s${n - 1}`, 10_000);
    expect(slowSub.received.map((m) => m.payload)).toEqual(Array.from({ length: n }, (_, i) => `s${i}`));
    expect(await limitHits('slow', 'maxClientMessagesPerSecond')).toBeGreaterThan(0);
    expect(await limitHits('free', 'maxClientMessagesPerSecond')).toBe(0);
  });

  it('maxMessagesPerSecond: one budget for all the clients of the tenant', async () => {
    await tenant('rate', { maxMessagesPerSecond: 10 });
    const sub = await dev('rate', 'd1');
    await sub.subscribe('t/#', 0);
    const p1 = await dev('rate', 'd2');
    const p2 = await dev('rate', 'd3');
    const freeSub = await dev('free', 'd1');
    await freeSub.subscribe('t/#', 0);
    const freePub = await dev('free', 'd2');

    const n = 12; // 24 messages against a budget of 10 per second
    for (let i = 0; i < n; i++) {
      p1.client.publish('t/1', `a${i}`, { qos: 0 });
      p2.client.publish('t/2', `b${i}`, { qos: 0 });
    }
    await sub.next();
    for (let i = 0; i < 20; i++) await freePub.publish('t/free', `f${i}`, { qos: 1 });
    await freeSub.next((m) => m.payload === 'f19');
    expect(sub.received.length).toBeLessThan(2 * n);
    await sub.next((m) => m.payload === `a${n - 1}`, 10_000);
    await sub.next((m) => m.payload === `b${n - 1}`, 10_000);
    expect(sub.received).toHaveLength(2 * n);
    expect(await limitHits('rate', 'maxMessagesPerSecond')).toBeGreaterThan(0);
  });

  const retainedIn = async (slug: string, filter: string): Promise<string[]> => {
    const res = await app.api<{ items: { topic: string; payload: string }[] }>(
      'GET',
      `/api/v1/tenants/${slug}/retained?filter=${encodeURIComponent(filter)}`,
    );
    expect(res.status).toBe(200);
    return res.body.items.map((m) => `${m.topic}=${m.payload}`).sort();
  };

  it('maxRetainedMessages: over it a retained PUBLISH is delivered but not stored', async () => {
    await tenant('ret', { maxRetainedMessages: 2 });
    const pub = await dev('ret', 'd1');
    const live = await dev('ret', 'd2');
    await live.subscribe('k/#');
    for (const k of ['k/1', 'k/2', 'k/3']) await pub.publish(k, `v-${k}`, { retain: true });
    await live.next((m) => m.topic === 'k/3'); // live subscribers still get it
    await pub.publish('k/1', 'v-k/1-new', { retain: true }); // replacing a stored one is fine

    // what is stored, read from the store itself (a replay to a new subscriber may interleave with live messages)
    expect(await retainedIn('ret', 'k/#')).toEqual(['k/1=v-k/1-new', 'k/2=v-k/2']);
    expect(await limitHits('ret', 'maxRetainedMessages')).toBe(1);

    // deleting one makes room again
    await pub.publish('k/2', '', { retain: true });
    await pub.publish('k/3', 'v-k/3-again', { retain: true });
    const again = await dev('ret', 'd2');
    await again.subscribe('k/3');
    expect(await again.next()).toMatchObject({ topic: 'k/3', payload: 'v-k/3-again', retain: true });

    // the default tenant stores all three
    const fpub = await dev('free', 'd1');
    for (const k of ['k/1', 'k/2', 'k/3']) await fpub.publish(k, 'v', { retain: true });
    const fsub = await dev('free', 'd2');
    await fsub.subscribe('k/#');
    await fsub.next((m) => m.topic === 'k/3');
    await fsub.next((m) => m.topic === 'k/1');
    await fsub.next((m) => m.topic === 'k/2');
  });

  it('maxRetainedBytes: a retained PUBLISH that would pass it is not stored', async () => {
    await tenant('retbytes', { maxRetainedBytes: 100 });
    const pub = await dev('retbytes', 'd1');
    await pub.publish('b/1', 'x'.repeat(60), { retain: true });
    await pub.publish('b/2', 'y'.repeat(60), { retain: true }); // 120 > 100: not stored
    await pub.publish('b/1', 'x'.repeat(30), { retain: true }); // replaces: 30 bytes
    await pub.publish('b/3', 'z'.repeat(60), { retain: true }); // 90: stored
    expect(await retainedIn('retbytes', 'b/#')).toEqual(['b/1=' + 'x'.repeat(30), 'b/3=' + 'z'.repeat(60)]);
    expect(await limitHits('retbytes', 'maxRetainedBytes')).toBe(1);
  });

  it('maxQueuedMessagesPerClient: an offline persistent session keeps only that many; other sessions keep theirs', async () => {
    await tenant('queue', { maxQueuedMessagesPerClient: 3 });
    const sleeper = await connect(app.mqttPort, { username: 'queue:d1', password: pw, clientId: 'sleeper', clean: false });
    await sleeper.subscribe('q/#', 1);
    await sleeper.end();
    const freeSleeper = await connect(app.mqttPort, { username: 'free:d1', password: pw, clientId: 'sleeper', clean: false });
    await freeSleeper.subscribe('q/#', 1);
    await freeSleeper.end();

    const pub = await dev('queue', 'd2');
    const fpub = await dev('free', 'd2');
    for (let i = 1; i <= 5; i++) {
      await pub.publish('q/x', `m${i}`, { qos: 1 });
      await fpub.publish('q/x', `f${i}`, { qos: 1 });
    }
    const back = await connect(app.mqttPort, { username: 'queue:d1', password: pw, clientId: 'sleeper', clean: false });
    open.push(back);
    await back.next((m) => m.payload === 'm3');
    const fback = await connect(app.mqttPort, { username: 'free:d1', password: pw, clientId: 'sleeper', clean: false });
    open.push(fback);
    await fback.next((m) => m.payload === 'f5');
    expect(fback.received.map((m) => m.payload)).toEqual(['f1', 'f2', 'f3', 'f4', 'f5']);
    // the session is back: live messages flow again, and nothing beyond the limit was kept
    await pub.publish('q/x', 'live', { qos: 1 });
    await back.next((m) => m.payload === 'live');
    expect(back.received.map((m) => m.payload)).toEqual(['m1', 'm2', 'm3', 'live']);
    expect(await limitHits('queue', 'maxQueuedMessagesPerClient')).toBe(2);
  });

  it('maxInflightPerClient: unacknowledged QoS 1 deliveries wait for PUBACKs', async () => {
    await tenant('window', { maxInflightPerClient: 2 });
    const raw = await RawSubscriber.connect(app.mqttPort, 'window:d1', pw, 'w/#');
    const pub = await dev('window', 'd2');
    for (let i = 1; i <= 5; i++) await pub.publish('w/x', `m${i}`, { qos: 1 });
    await pub.publish('w/x', 'qos0-marker', { qos: 0 }); // QoS 0 does not wait for the window
    await raw.until((p) => p.payload === 'qos0-marker');
    expect(raw.publishes.map((p) => p.payload)).toEqual(['m1', 'm2', 'qos0-marker']);
    raw.puback(raw.publishes[0].messageId);
    await raw.until((p) => p.payload === 'm3');
    raw.puback(raw.publishes[1].messageId);
    raw.puback(raw.publishes[3].messageId);
    await raw.until((p) => p.payload === 'm5');
    expect(raw.publishes.map((p) => p.payload)).toEqual(['m1', 'm2', 'qos0-marker', 'm3', 'm4', 'm5']);
    raw.close();

    // the same without acknowledgements, in a tenant with the defaults: all arrive
    const freeRaw = await RawSubscriber.connect(app.mqttPort, 'free:d1', pw, 'w/#');
    const fpub = await dev('free', 'd2');
    for (let i = 1; i <= 5; i++) await fpub.publish('w/x', `m${i}`, { qos: 1 });
    await freeRaw.until((p) => p.payload === 'm5');
    freeRaw.close();
    expect(await limitHits('window', 'maxInflightPerClient')).toBeGreaterThan(0);
  });
});

interface RawPublish {
  payload: string;
  messageId: number;
}

/** A subscriber that never acknowledges by itself: mqtt.js always sends PUBACK. */
class RawSubscriber {
  readonly publishes: RawPublish[] = [];
  private waiters: { match: (p: RawPublish) => boolean; resolve: () => void }[] = [];

  private constructor(private readonly socket: net.Socket) {}

  static connect(port: number, username: string, password: string, filter: string): Promise<RawSubscriber> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(port, '127.0.0.1');
      const sub = new RawSubscriber(socket);
      const parser = mqttPacket.parser();
      parser.on('packet', (p: Packet) => {
        if (p.cmd === 'connack') {
          if (p.returnCode !== 0) reject(new Error(`CONNACK ${p.returnCode}`));
          else socket.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: filter, qos: 1 }] }));
        } else if (p.cmd === 'suback') {
          resolve(sub);
        } else if (p.cmd === 'publish') {
          sub.received({ payload: p.payload.toString(), messageId: p.messageId ?? 0 });
        }
      });
      socket.on('data', (d) => parser.parse(d));
      socket.on('error', reject);
      socket.write(mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean: true, clientId: `raw-${username}`, keepalive: 60, username, password: Buffer.from(password) }));
    });
  }

  private received(p: RawPublish): void {
    this.publishes.push(p);
    this.waiters = this.waiters.filter((w) => {
      if (!w.match(p)) return true;
      w.resolve();
      return false;
    });
  }

  until(match: (p: RawPublish) => boolean, timeoutMs = 5000): Promise<void> {
    if (this.publishes.some(match)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`not received; got ${JSON.stringify(this.publishes)}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  puback(messageId: number): void {
    this.socket.write(mqttPacket.generate({ cmd: 'puback', messageId }));
  }

  close(): void {
    this.socket.destroy();
  }
}
