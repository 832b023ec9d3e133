/**
 * Fair service between publishers (issue #9): under saturation, every publisher of a tenant gets
 * a fair share of the broker, whatever its QoS and however deep its pipeline. aedes reads and
 * handles a whole socket read per client per turn, so a client with more bytes waiting could be
 * served more often; a QoS 1 publisher that pipelines without bound must not starve the others.
 *
 * The service runs in a process of its own (`node dist/src/main.js`), as deployed, so that the
 * load generated here does not share its event loop. The tenant's rate limits are raised out of
 * the way: they would make the shares equal by themselves. Every share is counted at one
 * subscriber of `fair/+`.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type Packet } from 'mqtt-packet';
import { describeOnce } from '../helpers/app';
import { AppProcess } from '../helpers/app-process';

jest.setTimeout(120_000);

const PUBLISHERS = 10;
const MEASURE_MS = 3000;

function rawClient(port: number, clientId: string, onPacket: (p: Packet, s: Socket) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, '127.0.0.1');
    s.setNoDelay(true);
    const parser = mqtt.parser();
    parser.on('packet', (p) => {
      if (p.cmd === 'connack') {
        if (p.returnCode === 0) resolve(s);
        else reject(new Error(`CONNACK ${p.returnCode} for ${clientId}`));
      } else onPacket(p, s);
    });
    s.on('data', (d) => parser.parse(d));
    s.on('error', reject);
    s.write(mqtt.generate({ cmd: 'connect', clientId, clean: true, keepalive: 60, protocolVersion: 4, username: 'fair:dev', password: Buffer.from('fair-password') }));
  });
}

describeOnce('fair service between publishers', () => {
  const token = randomBytes(16).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), 'fairness-'));
  let node: AppProcess;

  beforeAll(async () => {
    node = await AppProcess.start('fairness', { DATA_DIR: dataDir, ADMIN_TOKEN: token });
    const limits = { maxMessagesPerSecond: 10_000_000, maxClientMessagesPerSecond: 10_000_000, maxInflightPerClient: 65535 };
    await node.createTenantWithDevice(token, 'fair', 'fair-password', { limits });
  });

  afterAll(async () => {
    await node?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Floods with every publisher at once; returns the messages of each delivered in the window. */
  async function shares(run: string, qosOf: (i: number) => 0 | 1, window: (i: number) => number): Promise<number[]> {
    const counts = new Array<number>(PUBLISHERS).fill(0);
    let measuring = false;
    const prefix = `fair/${run}-`;
    let subscribed!: () => void;
    const suback = new Promise<void>((r) => (subscribed = r));
    const sub = await rawClient(node.ports.mqtt, `${run}-sub`, (p, s) => {
      if (p.cmd === 'suback') subscribed();
      if (p.cmd !== 'publish') return;
      if (measuring) counts[Number(p.topic.slice(prefix.length))]++;
      if (p.qos === 1) s.write(mqtt.generate({ cmd: 'puback', messageId: p.messageId as number }));
    });
    sub.write(mqtt.generate({ cmd: 'subscribe', messageId: 1, subscriptions: [{ topic: 'fair/+', qos: 1 }] }));
    await suback;
    const publishers: Socket[] = [];
    let running = true;
    for (let i = 0; i < PUBLISHERS; i++) {
      const qos = qosOf(i);
      const max = window(i);
      const packet = mqtt.generate({ cmd: 'publish', topic: `${prefix}${i}`, payload: Buffer.alloc(64, i), qos: 0, retain: false, dup: false });
      let unacked = 0;
      let id = 0;
      const pump = (s: Socket) => {
        // as fast as the socket takes them; QoS 1 up to `max` unacknowledged
        while (running && !s.writableNeedDrain && (qos === 0 || unacked < max)) {
          if (qos === 0) s.write(packet);
          else {
            unacked++;
            id = (id % 65535) + 1;
            s.write(mqtt.generate({ cmd: 'publish', topic: `${prefix}${i}`, payload: Buffer.alloc(64, i), qos: 1, messageId: id, retain: false, dup: false }));
          }
        }
      };
      const s = await rawClient(node.ports.mqtt, `${run}-pub-${i}`, (p, sock) => {
        if (p.cmd === 'puback') {
          unacked--;
          pump(sock);
        }
      });
      s.on('drain', () => pump(s));
      publishers.push(s);
    }
    for (const s of publishers) s.emit('drain');
    await new Promise((r) => setTimeout(r, 1000)); // warm-up: every pipeline full
    measuring = true;
    await new Promise((r) => setTimeout(r, MEASURE_MS));
    measuring = false;
    running = false;
    for (const s of [sub, ...publishers]) s.destroy();
    return counts;
  }

  const MAX_SPREAD = 4;
  const fair = (counts: number[]) => {
    const mean = counts.reduce((a, b) => a + b, 0) / counts.length;
    // a starved publisher would get a small fraction of the mean. Measured here: 1:1.1 for ten
    // QoS 1 publishers, up to 1:1.5 with the unbounded pipeline, once 1:2.6 in a full `npm test`
    // on a noisy machine (no publisher under half the mean); capping aedes' batches at 8 packets
    // per turn (tried, reverted) gave 1:6 to 1:10, which MAX_SPREAD still catches
    return { mean, min: Math.min(...counts), max: Math.max(...counts), counts };
  };

  it('serves ten QoS 1 publishers evenly', async () => {
    const r = fair(await shares('q1', () => 1, () => 100));
    expect(r.mean).toBeGreaterThan(100);
    expect(r.min).toBeGreaterThanOrEqual(0.5 * r.mean);
    expect(r.max).toBeLessThanOrEqual(MAX_SPREAD * r.min);
  });

  it('lets no QoS 1 publisher with an unbounded pipeline starve nine QoS 0 publishers, nor be starved', async () => {
    const r = fair(await shares('mixed', (i) => (i === 0 ? 1 : 0), () => 65535));
    expect(r.mean).toBeGreaterThan(100);
    expect(r.min).toBeGreaterThanOrEqual(0.5 * r.mean);
    expect(r.max).toBeLessThanOrEqual(MAX_SPREAD * r.min);
  });
});
