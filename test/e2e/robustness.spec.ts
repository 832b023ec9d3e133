/**
 * Hostile and broken clients against the whole service (issue #9).
 *
 * A seeded fuzzer (ROBUSTNESS_SEED to replay a run; the seed is printed) opens thousands of
 * connections to the MQTT and WebSocket ports, each sending random bytes or a packet sequence
 * of mosquitto's conformance corpus (../shared/conformance/.../data/*.json, with a small
 * built-in corpus when it is absent) mutated at random. Meanwhile two other tenants publish and
 * receive at QoS 1. Then a QoS 0 flood into a subscriber that does not read, whose clients all
 * disconnect with the backlog queued (this crashed aedes 1.2.0). The crowd of 10,000 half-open
 * connections is in half-open.spec.ts (the service runs in a process of its own there).
 *
 * Throughout: the process stays up; every connection that cannot be a valid MQTT session is
 * closed by the broker; the other tenants' clients stay connected and receive every message,
 * in order, and nothing of the fuzzed tenant; once it is over, connections and heap return to
 * where they were.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqtt from 'mqtt';
import mqttPacket from 'mqtt-packet';
import WebSocket from 'ws';
import { BrokerService } from '../../src/broker/broker.service';
import { startTestApp, type TestApp } from '../helpers/app';
import { Watch } from '../helpers/watch';

jest.setTimeout(180_000);

const SEED = Number(process.env.ROBUSTNESS_SEED ?? 0x5eed) >>> 0;
const FUZZ_MS = Number(process.env.ROBUSTNESS_FUZZ_MS ?? 25_000);
const FUZZ_CONNECTIONS = Number(process.env.ROBUSTNESS_CONNECTIONS ?? 6000);
const PARALLEL = 40;
const CONNECT_TIMEOUT_MS = 2000;

/** mulberry32: small, fast, and the same sequence for the same seed */
function prng(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (n: number) => Math.floor(next() * n),
    bytes: (n: number) => Buffer.from(Array.from({ length: n }, () => Math.floor(next() * 256))),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)],
  };
}
type Rng = ReturnType<typeof prng>;

interface Sequence {
  name: string;
  connect: boolean;
  sends: Buffer[];
}

const CORPUS_DIR = resolve(
  process.env.ROBUSTNESS_CORPUS ?? join(__dirname, '../../../shared/conformance/upstream/mosquitto/test/broker/data'),
);

/** MQTT 3.1/3.1.1 packet sequences: mosquitto's corpus when present, a few of our own otherwise. */
function loadCorpus(): Sequence[] {
  const out: Sequence[] = [];
  if (existsSync(CORPUS_DIR)) {
    for (const file of readdirSync(CORPUS_DIR).filter((f) => f.endsWith('.json'))) {
      const groups = JSON.parse(readFileSync(join(CORPUS_DIR, file), 'utf8')) as Array<{
        group: string;
        tests: Array<{ name: string; ver?: number; connect?: boolean; msgs: Array<{ type: string; payload?: string }> }>;
      }>;
      for (const g of groups) {
        for (const t of g.tests) {
          if ((t.ver ?? 4) === 5) continue;
          const sends = t.msgs.filter((m) => m.type === 'send' && m.payload).map((m) => Buffer.from((m.payload as string).replace(/ /g, ''), 'hex'));
          if (sends.length > 0) out.push({ name: `${g.group} ${t.name}`, connect: t.connect !== false, sends });
        }
      }
    }
  }
  if (out.length === 0) {
    const hex = (s: string) => Buffer.from(s.replace(/ /g, ''), 'hex');
    out.push(
      { name: 'connect', connect: false, sends: [hex('10 0D 0004 4D515454 04 02 000A 0001 70')] },
      { name: 'subscribe', connect: true, sends: [hex('82 06 1234 0001 70 01')] },
      { name: 'publish q1', connect: true, sends: [hex('32 10 0005 746F706963 0001 7061796C6F6164')] },
      { name: 'publish q2', connect: true, sends: [hex('34 10 0005 746F706963 0001 7061796C6F6164'), hex('62 02 0001')] },
      { name: 'unsubscribe', connect: true, sends: [hex('A2 07 1234 0003 612F62')] },
      { name: 'pingreq', connect: true, sends: [hex('C0 00')] },
    );
  }
  return out;
}

function connectPacket(rng: Rng): Buffer {
  return mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: `fz${rng.int(1e9)}`, clean: true, keepalive: 5 });
}

/** one mutation of one packet */
function mutate(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return rng.bytes(1 + rng.int(8));
  const at = rng.int(b.length);
  const copy = Buffer.from(b);
  switch (rng.int(8)) {
    case 0: // flip a bit
      copy[at] ^= 1 << rng.int(8);
      return copy;
    case 1: // any byte
      copy[at] = rng.int(256);
      return copy;
    case 2: // truncate
      return copy.subarray(0, at);
    case 3: // insert random bytes
      return Buffer.concat([copy.subarray(0, at), rng.bytes(1 + rng.int(16)), copy.subarray(at)]);
    case 4: // delete a range
      return Buffer.concat([copy.subarray(0, at), copy.subarray(at + 1 + rng.int(8))]);
    case 5: // a remaining length that lies
      if (copy.length > 1) copy[1] = rng.pick([0, 1, 0x7f, 0xff, copy[1] + 1, copy[1] - 1]) & 0xff;
      return copy;
    case 6: // repeated
      return Buffer.concat([copy, copy]);
    default: // garbage after it
      return Buffer.concat([copy, rng.bytes(1 + rng.int(64))]);
  }
}

type Outcome = 'closed' | 'open';

/** Sends `chunks`, then a PINGREQ; waits `waitMs` for the broker to hang up; always cleans up. */
function probeTcp(port: number, chunks: Buffer[], waitMs: number): Promise<Outcome> {
  return new Promise((resolveOutcome) => {
    const socket: Socket = tcpConnect(port, '127.0.0.1');
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolveOutcome(o);
    };
    const timer = setTimeout(() => finish('open'), waitMs + 500);
    socket.on('error', () => finish('closed'));
    socket.on('close', () => finish('closed'));
    socket.on('data', () => undefined);
    socket.once('connect', () => {
      for (const c of chunks) socket.write(c);
      setTimeout(() => !done && socket.write(Buffer.from([0xc0, 0x00])), 20);
      clearTimeout(timer);
      setTimeout(() => finish('open'), waitMs);
    });
  });
}

function probeWebSocket(port: number, chunks: Buffer[], waitMs: number): Promise<Outcome> {
  return new Promise((resolveOutcome) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/mqtt`, 'mqtt');
    let done = false;
    const finish = (o: Outcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.terminate();
      resolveOutcome(o);
    };
    const timer = setTimeout(() => finish('open'), waitMs + 1000);
    ws.on('error', () => finish('closed'));
    ws.on('close', () => finish('closed'));
    ws.on('open', () => {
      for (const c of chunks) ws.send(c);
      setTimeout(() => finish('open'), waitMs);
    });
  });
}

async function watchTenant(app: TestApp, slug: string): Promise<Watch> {
  await app.createTenant(slug);
  await app.createDevice(slug, 'dev', `${slug}-password`);
  await app.allow(slug);
  return Watch.connect(`mqtt://127.0.0.1:${app.mqttPort}`, slug, `${slug}:dev`, `${slug}-password`);
}

const gc: () => void = (() => {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
})();

async function settledHeap(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().heapUsed;
}

describe('robustness: hostile clients', () => {
  let app: TestApp;
  let broker: BrokerService;
  let watches: Watch[] = [];
  const connections = () => (broker as unknown as { connections: Set<unknown> }).connections.size;

  beforeAll(async () => {
    app = await startTestApp({ ANONYMOUS_TENANT: 'fuzz', CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS) });
    await app.createTenant('fuzz');
    await app.allow('fuzz');
    broker = app.running.app.get(BrokerService);
    watches = [await watchTenant(app, 'watch-a'), await watchTenant(app, 'watch-b')];
  });

  afterAll(async () => {
    await Promise.all(watches.map((w) => w.end()));
    await app?.close();
  });

  it('runs every connection through the protocol layer (hardenClient in BrokerService.handle)', async () => {
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, { clientId: 'wired', reconnectPeriod: 0 });
    const live = Object.values((broker.aedes as unknown as { clients: object }).clients as Record<string, { _outbound?: unknown; _parser: { _strict?: unknown } }>);
    await client.endAsync();
    expect(live.length).toBeGreaterThan(0);
    expect(live.every((c) => c._outbound !== undefined && c._parser._strict !== undefined)).toBe(true);
  });

  it('survives thousands of fuzzed connections without disturbing other tenants, and gives back what it took', async () => {
    const rng = prng(SEED);
    const corpus = loadCorpus();
    console.log(`robustness: seed ${SEED} (ROBUSTNESS_SEED to replay), ${corpus.length} sequences in the corpus`);
    const baseConnections = connections();
    const baseHeap = await settledHeap();
    for (const w of watches) w.start(10);

    const stats = { tcp: 0, ws: 0, random: 0, randomOpen: [] as string[], mutated: 0, closed: 0 };
    const until = Date.now() + FUZZ_MS;
    let started = 0;
    const one = async (): Promise<void> => {
      const kind = rng.int(10);
      if (kind < 3) {
        // random bytes at the MQTT port: refused at once unless the first byte announces a CONNECT
        const junk = rng.bytes(1 + rng.int(512));
        const outcome = await probeTcp(app.mqttPort, [junk], 300);
        stats.tcp++;
        stats.random++;
        if (outcome === 'closed') stats.closed++;
        else if (junk[0] >> 4 !== 1) stats.randomOpen.push(junk.subarray(0, 8).toString('hex'));
        return;
      }
      if (kind === 3) {
        // random bytes at the WebSocket port, as HTTP or inside a WebSocket
        const junk = rng.bytes(1 + rng.int(512));
        const outcome = rng.int(2) === 0 ? await probeTcp(app.wsPort, [junk], 300) : await probeWebSocket(app.wsPort, [junk], 300);
        stats.ws++;
        stats.random++;
        if (outcome === 'closed') stats.closed++;
        else if (junk[0] >> 4 !== 1) stats.randomOpen.push('ws:' + junk.subarray(0, 8).toString('hex'));
        return;
      }
      const seq = rng.pick(corpus);
      const packets = seq.connect ? [connectPacket(rng), ...seq.sends] : [...seq.sends];
      const target = rng.int(packets.length);
      packets[target] = mutate(rng, packets[target]);
      if (rng.int(3) === 0) packets.push(rng.bytes(1 + rng.int(32)));
      const overWs = rng.int(4) === 0;
      const outcome = overWs ? await probeWebSocket(app.wsPort, packets, 150) : await probeTcp(app.mqttPort, packets, 150);
      stats.mutated++;
      if (overWs) stats.ws++;
      else stats.tcp++;
      if (outcome === 'closed') stats.closed++;
    };
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (Date.now() < until && started < FUZZ_CONNECTIONS) {
          started++;
          await one();
        }
      }),
    );
    console.log(`robustness: ${started} connections (${stats.tcp} TCP, ${stats.ws} WebSocket; ${stats.random} random, ${stats.mutated} mutated), ${stats.closed} closed by the broker`);

    expect(started).toBeGreaterThanOrEqual(Math.min(FUZZ_CONNECTIONS, 1000));
    // random bytes that do not even start like a CONNECT are refused at once [MQTT-3.1.0-1]
    expect(stats.randomOpen).toEqual([]);

    for (const w of watches) await w.stop();
    for (const w of watches) {
      expect({ tenant: w.name, disconnects: w.disconnects, foreign: w.foreign }).toEqual({ tenant: w.name, disconnects: 0, foreign: 0 });
      expect(w.sent).toBeGreaterThan(100);
      expect(w.received).toEqual(Array.from({ length: w.sent }, (_, i) => i));
    }

    // whatever the fuzz left half-done is closed by the CONNECT deadline or keepalive (5 s)
    const deadline = Date.now() + 20_000;
    while (connections() > baseConnections && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    expect(connections()).toBe(baseConnections);
    const heap = await settledHeap();
    console.log(`robustness: heap ${(baseHeap / 1e6).toFixed(1)} MB before, ${(heap / 1e6).toFixed(1)} MB after`);
    expect(heap - baseHeap).toBeLessThan(24 * 1024 * 1024);

    // and the service still works for a newcomer
    const fresh = await mqtt.connectAsync(`mqtt://127.0.0.1:${app.mqttPort}`, { reconnectPeriod: 0 });
    await fresh.subscribeAsync('after/fuzz', { qos: 1 });
    const got = new Promise<string>((r) => fresh.once('message', (_t, p) => r(p.toString())));
    await fresh.publishAsync('after/fuzz', 'alive', { qos: 1 });
    expect(await got).toBe('alive');
    await fresh.endAsync();
    expect((await fetch(`${app.http}/health/live`)).status).toBe(200);
  });

  it('survives a QoS 0 flood into a subscriber that does not read, whose clients then all leave', async () => {
    for (const w of watches) w.start(10);
    const stuck = tcpConnect(app.mqttPort, '127.0.0.1');
    await new Promise((r) => stuck.once('connect', r));
    stuck.on('error', () => undefined);
    stuck.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: 'stuck', clean: true, keepalive: 0 }));
    stuck.write(mqttPacket.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'flood/#', qos: 0 }] }));
    await new Promise((r) => setTimeout(r, 200));
    stuck.pause();

    const pubs: Socket[] = [];
    for (let i = 0; i < 10; i++) {
      const s = tcpConnect(app.mqttPort, '127.0.0.1');
      await new Promise((r) => s.once('connect', r));
      s.on('error', () => undefined);
      s.on('data', () => undefined);
      s.write(mqttPacket.generate({ cmd: 'connect', protocolVersion: 4, clientId: `flooder-${i}`, clean: true, keepalive: 0 }));
      pubs.push(s);
    }
    const payload = randomBytes(200);
    const chunk = (i: number) =>
      Buffer.concat(Array.from({ length: 50 }, () => mqttPacket.generate({ cmd: 'publish', topic: `flood/${i}`, payload, qos: 0, retain: false, dup: false })));
    const until = Date.now() + 4000;
    while (Date.now() < until) {
      pubs.forEach((s, i) => s.writableLength < 1 << 20 && s.write(chunk(i)));
      await new Promise((r) => setTimeout(r, 2));
    }
    for (const s of [stuck, ...pubs]) s.destroy();
    await new Promise((r) => setTimeout(r, 1000));

    for (const w of watches) await w.stop();
    for (const w of watches) {
      expect(w.disconnects).toBe(0);
      expect(w.received).toEqual(Array.from({ length: w.sent }, (_, i) => i));
    }
    expect((await fetch(`${app.http}/health/live`)).status).toBe(200);
  });
});
