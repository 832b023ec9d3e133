import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import { connect } from './mqtt';

/**
 * The helper itself: a resumed session's queued messages can reach the client in the same read
 * as its CONNACK (seen in CI as a lost message in the cluster suite), and must be recorded.
 */
describe('test helper connect()', () => {
  let server: net.Server;
  let port: number;

  beforeAll(async () => {
    // answers the CONNECT with a CONNACK and a queued PUBLISH in one write
    server = net.createServer((socket) => {
      socket.once('data', () => {
        const connack = mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: true });
        const publish = mqttPacket.generate({
          cmd: 'publish', topic: 'queued/1', payload: Buffer.from('from the queue'), qos: 0, dup: false, retain: false,
        });
        socket.write(Buffer.concat([connack, publish]));
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  });

  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('records a message that arrives in the same read as the CONNACK', async () => {
    const c = await connect(port, { clientId: 'resumed', clean: false });
    try {
      expect(c.received.map((m) => m.payload)).toEqual(['from the queue']);
    } finally {
      await c.end(true);
    }
  });
});
