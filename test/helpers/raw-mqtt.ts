import { Aedes, type AedesOptions } from 'aedes';
import mqtt, { type Packet } from 'mqtt-packet';
import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A byte-level MQTT client for protocol tests: sends packets (objects or raw bytes) and reads
 * what the broker answers, packet by packet, or notices that the broker closed the connection.
 */
export class RawClient {
  private readonly parser = mqtt.parser({ protocolVersion: 4 });
  private readonly packets: Packet[] = [];
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(readonly socket: Socket) {
    this.parser.on('packet', (p: Packet) => {
      this.packets.push(p);
      this.wake();
    });
    socket.on('data', (b) => this.parser.parse(b));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.setNoDelay(true);
      socket.once('connect', () => resolve(new RawClient(socket)));
      socket.once('error', reject);
    });
  }

  /** Opens a connection and completes a CONNECT; fails unless CONNACK 0 comes back. */
  static async connected(port: number, connect: Partial<mqtt.IConnectPacket> = {}): Promise<{ client: RawClient; connack: mqtt.IConnackPacket }> {
    const client = await RawClient.open(port);
    client.send({ cmd: 'connect', protocolVersion: 4, clientId: 'c' + Math.random().toString(36).slice(2), clean: true, keepalive: 0, ...connect } as mqtt.IConnectPacket);
    const connack = (await client.next()) as mqtt.IConnackPacket;
    if (connack.cmd !== 'connack' || connack.returnCode !== 0) throw new Error(`CONNECT refused: ${JSON.stringify(connack)}`);
    return { client, connack };
  }

  send(packet: Packet | Buffer | Partial<Packet>): void {
    this.socket.write(Buffer.isBuffer(packet) ? packet : mqtt.generate(packet as Packet));
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  /** The next packet from the broker; rejects on timeout or when the connection closes first. */
  async next(timeoutMs = 3000): Promise<Packet> {
    const deadline = Date.now() + timeoutMs;
    while (this.packets.length === 0) {
      if (this.closed) throw new Error('connection closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no packet within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
    return this.packets.shift() as Packet;
  }

  /** Packets received within `ms` (without waiting for more). */
  async drain(ms = 300): Promise<Packet[]> {
    await new Promise((r) => setTimeout(r, ms));
    return this.packets.splice(0);
  }

  /** True when the broker closes the connection within `ms`. */
  async closesWithin(ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.closed;
  }

  end(): void {
    this.socket.destroy();
  }
}

export interface BareBroker {
  broker: Aedes;
  port: number;
  server: Server;
  /** messages waiting in aedes' emitter for a free delivery slot (the broker-wide backlog) */
  queued(): number;
  close(): Promise<void>;
}

/** A bare aedes (no tenancy) on a loopback port, for tests of aedes' own behaviour. */
export async function startBareBroker(
  opts: Partial<AedesOptions> = {},
  onClient?: (client: ReturnType<Aedes['handle']>) => void,
): Promise<BareBroker> {
  const broker = await Aedes.createBroker(opts);
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const client = broker.handle(socket);
    onClient?.(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    broker,
    port,
    server,
    queued: () => (broker as unknown as { mq: { length: number } }).mq.length,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
