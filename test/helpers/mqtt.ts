import { spawn } from 'node:child_process';
import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { execFile } from 'node:child_process';
import mqtt, { IClientOptions, MqttClient, Packet } from 'mqtt';

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
}

/** An mqtt.js client that records what it receives, for awaiting messages without sleeps. */
export class TestClient {
  readonly received: Received[] = [];
  private waiters: { match: (m: Received) => boolean; resolve: (m: Received) => void }[] = [];

  constructor(readonly client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      const m = { topic, payload: payload.toString(), qos: packet.qos, retain: packet.retain };
      this.received.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(m)) return true;
        w.resolve(m);
        return false;
      });
    });
  }

  /** Resolves with the first message (already received or next) that matches. */
  next(match: (m: Received) => boolean = () => true, timeoutMs = 5000): Promise<Received> {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    // made here, not in the timer, so that its stack names the test line that waited
    const timeout = new Error(`no matching message within ${timeoutMs} ms`);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const last = this.received.slice(-5).map((m) => `${m.topic} ${m.payload.slice(0, 40)}`);
        timeout.message += ` (${this.received.length} received; the last: ${JSON.stringify(last)})`;
        reject(timeout);
      }, timeoutMs);
      this.waiters.push({
        match,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Proves absence: publishes a marker on `markerTopic` (which this client receives) and
   * returns everything received before the marker arrived. Messages are delivered in order. */
  async drain(publisher: TestClient, markerTopic: string): Promise<Received[]> {
    const marker = `marker-${Math.random()}`;
    await publisher.client.publishAsync(markerTopic, marker, { qos: 1 });
    await this.next((m) => m.payload === marker);
    const idx = this.received.findIndex((m) => m.payload === marker);
    return this.received.slice(0, idx);
  }

  subscribe(topic: string | string[], qos: 0 | 1 | 2 = 1) {
    return this.client.subscribeAsync(topic, { qos });
  }

  publish(topic: string, payload: string, opts: { qos?: 0 | 1 | 2; retain?: boolean } = {}) {
    return this.client.publishAsync(topic, payload, { qos: opts.qos ?? 1, retain: opts.retain ?? false });
  }

  end(force = false): Promise<void> {
    return this.client.endAsync(force);
  }
}

/**
 * SUBSCRIBE and return the SUBACK return codes as sent (mqtt.js rejects a SUBACK holding 0x80,
 * which is exactly what ACL tests need to see).
 */
export function subackCodes(c: TestClient, topics: string | string[], qos: 0 | 1 | 2 = 0): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const onPacket = (packet: Packet) => {
      if (packet.cmd !== 'suback') return;
      c.client.off('packetreceive', onPacket);
      resolve(packet.granted as number[]);
    };
    c.client.on('packetreceive', onPacket);
    c.client.subscribe(topics, { qos }, (err) => {
      if (err && !/Subscribe error/.test(err.message)) reject(err);
    });
  });
}

function mqttString(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
  const len = Buffer.alloc(2);
  len.writeUInt16BE(b.length);
  return Buffer.concat([len, b]);
}

/**
 * Sends one hand-encoded MQTT 3.1.1 CONNECT and resolves with the CONNACK return code: for
 * what client libraries refuse to send (an empty client id without a clean session...).
 */
export async function rawConnack(
  port: number,
  opts: { clientId: string; clean: boolean; username?: string; password?: string; keepalive?: number },
): Promise<number> {
  const flags = (opts.username !== undefined ? 0x80 : 0) | (opts.password !== undefined ? 0x40 : 0) | (opts.clean ? 0x02 : 0);
  const keepalive = Buffer.alloc(2);
  keepalive.writeUInt16BE(opts.keepalive ?? 30);
  const body = Buffer.concat([
    mqttString('MQTT'),
    Buffer.from([4, flags]),
    keepalive,
    mqttString(opts.clientId),
    ...(opts.username !== undefined ? [mqttString(opts.username)] : []),
    ...(opts.password !== undefined ? [mqttString(opts.password)] : []),
  ]);
  const packet = Buffer.concat([Buffer.from([0x10]), encodeLength(body.length), body]);
  const code = await connackAfter(port, [packet]);
  if (code === 'closed') throw new Error('closed without CONNACK');
  return code;
}

/**
 * Writes `chunks` on a new connection, each a write of its own (a PROXY header, then a CONNECT...),
 * and resolves with the CONNACK return code, or 'closed' when the broker closes first.
 */
export function connackAfter(port: number, chunks: Buffer[]): Promise<number | 'closed'> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    const parser = mqttPacket.parser();
    parser.on('packet', (p: { cmd: string; returnCode?: number }) => {
      if (p.cmd !== 'connack') return;
      resolve(p.returnCode ?? -1);
      socket.destroy();
    });
    socket.on('data', (d) => parser.parse(d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve('closed'));
    for (const chunk of chunks) socket.write(chunk);
  });
}

function encodeLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  return Buffer.from(out);
}

/**
 * Connects as mqtt.connectAsync does, but records from before the CONNACK: a resumed session's
 * queued messages can arrive in the same read as the CONNACK, and mqtt.js emits them before a
 * promise of the connection could resolve (a recorder attached after it missed them).
 */
export function connect(port: number, opts: IClientOptions = {}, url = `mqtt://127.0.0.1:${port}`): Promise<TestClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts });
  const recorder = new TestClient(client);
  return new Promise((resolve, reject) => {
    const settle = () => {
      client.off('connect', onConnect);
      client.off('end', onConnect);
      client.off('error', onError);
    };
    const onConnect = () => {
      settle();
      resolve(recorder);
    };
    const onError = (err: Error) => {
      settle();
      client.end();
      reject(err);
    };
    client.on('connect', onConnect);
    client.on('end', onConnect);
    client.on('error', onError);
  });
}

/** Resolves with the CONNACK return code of a refused connect (throws if accepted). */
export function connectRefused(port: number, opts: IClientOptions = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...opts });
    client.on('connect', () => {
      client.end(true);
      reject(new Error('connection was accepted'));
    });
    client.on('error', (err: Error & { code?: number }) => {
      client.end(true);
      if (typeof err.code === 'number') resolve(err.code);
      else reject(err);
    });
  });
}

/** Waits until the broker closes this client's connection. */
export function closedByServer(c: TestClient, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!c.client.connected) return resolve();
    const timer = setTimeout(() => reject(new Error('connection still open')), timeoutMs);
    c.client.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a real CLI (mosquitto_pub, openssl...) without blocking the event loop that serves it. */
export function run(cmd: string, args: string[], timeoutMs = 15000): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
    child.stdin?.end();
  });
}

/**
 * Starts `mosquitto_sub -d ...` and resolves once its SUBACK arrived (read from its debug output),
 * so a publish that follows is certain to reach it. `done` resolves when it exits.
 */
export function mosquittoSub(args: string[]): Promise<{ done: Promise<RunResult>; kill: () => void }> {
  return new Promise((resolve, reject) => {
    // stdbuf: its debug lines are otherwise block-buffered on a pipe
    const child = spawn('stdbuf', ['-oL', 'mosquitto_sub', '-d', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let ready = false;
    const done = new Promise<RunResult>((res) => child.on('close', (code) => res({ code: code ?? 1, stdout, stderr })));
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error(`mosquitto_sub not subscribed: ${stdout} ${stderr}`));
    }, 10000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (!ready && stdout.includes('SUBACK')) {
        ready = true;
        clearTimeout(timer);
        resolve({ done, kill: () => child.kill() });
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    void done.then((r) => {
      if (!ready) {
        clearTimeout(timer);
        reject(new Error(`mosquitto_sub exited (${r.code}): ${r.stdout} ${r.stderr}`));
      }
    });
  });
}

/** The payload lines mosquitto_sub printed, without its -d debug lines. */
export function payloadLines(out: string): string[] {
  return out.split('\n').filter((l) => l && !/^Client .* (sending|received) /.test(l) && !l.startsWith('Subscribed'));
}
