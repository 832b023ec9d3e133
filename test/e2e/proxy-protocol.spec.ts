/**
 * PROXY_PROTOCOL: nodes behind a TCP load balancer (HAProxy's `send-proxy-v2`, an AWS NLB) learn
 * each client's address from the header the balancer sends first, on all four MQTT listeners.
 * The "balancer" here is the test itself: every connection comes from 127.0.0.1 and starts with
 * the header a balancer would write.
 */
import mqtt, { MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect } from 'node:tls';
import { createWebSocketStream, WebSocket } from 'ws';
import { proxyV2Header } from '../../src/broker/proxy-protocol.test-helper';
import { describeOnce, startTestApp, type TestApp } from '../helpers/app';
import { connackAfter } from '../helpers/mqtt';
import { parsePrometheus } from '../helpers/prometheus';

jest.setTimeout(30_000);

const v1 = (family: 'TCP4' | 'TCP6', address: string) =>
  Buffer.from(`PROXY ${family} ${address} ${family === 'TCP4' ? '10.0.0.1' : '2001:db8::1'} 40000 1883\r\n`);

/** A v2 PROXY header for an IPv4 (4 bytes) or IPv6 (16 bytes) client address. */
const v2 = (address: Buffer) =>
  proxyV2Header(0x1, address.length === 16 ? 0x2 : 0x1, Buffer.concat([address, Buffer.alloc(address.length), Buffer.from([0x9c, 0x40, 0x07, 0x5b])]));

/** A TCP connection to `port` whose first bytes are `header`, as the balancer opens it. */
function fromBalancer(port: number, header: Buffer): Socket {
  const socket = netConnect(port, '127.0.0.1');
  socket.write(header);
  return socket;
}

/** An mqtt.js client over `open()`'s stream (no reconnects). */
function client(open: () => Duplex, options: mqtt.IClientOptions): Promise<MqttClient> {
  const c = new MqttClient(() => open() as never, { reconnectPeriod: 0, connectTimeout: 5000, protocolVersion: 4, ...options });
  return new Promise((resolve, reject) => {
    c.once('connect', () => resolve(c));
    c.once('error', reject);
    c.once('close', () => reject(new Error('closed before CONNACK')));
  });
}

const connectPacket = (clientId: string, username: string, password: string) =>
  mqttPacket.generate({ cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clientId, clean: true, keepalive: 30, username, password: Buffer.from(password) });

describeOnce('PROXY protocol: the client address behind a TCP load balancer', () => {
  let app: TestApp;
  let serverCa: string;
  const clients: MqttClient[] = [];

  beforeAll(async () => {
    app = await startTestApp({ PROXY_PROTOCOL: 'true', AUTH_FAIL_MAX_PER_ADDRESS: '3', AUTH_FAIL_MAX_PER_DEVICE: '100', CONNECT_TIMEOUT_MS: '1500' });
    await app.createTenant('acme');
    await app.createDevice('acme', 'd1', 'right-password');
    await app.allow('acme');
    serverCa = (await app.api<string>('GET', '/api/v1/server-ca', undefined, null)).body;
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync()));
    await app?.close();
  });

  it('takes the address from v1 and v2 headers on MQTT, MQTTS, WS and WSS, and lists it with the session', async () => {
    const login = (clientId: string) => ({ clientId, username: 'acme:d1', password: 'right-password' });
    const tls = (header: Buffer) => () => tlsConnect({ socket: fromBalancer(app.mqttsPort, header), ca: serverCa, servername: 'localhost' });
    const ws = (scheme: 'ws' | 'wss', port: number, header: Buffer) => () =>
      createWebSocketStream(
        new WebSocket(`${scheme}://localhost:${port}/mqtt`, 'mqtt', {
          ca: serverCa,
          createConnection: () => (scheme === 'ws' ? fromBalancer(port, header) : tlsConnect({ socket: fromBalancer(port, header), ca: serverCa, servername: 'localhost' })),
        }),
      );
    clients.push(
      await client(() => fromBalancer(app.mqttPort, v1('TCP4', '203.0.113.7')), login('over-mqtt')),
      await client(tls(v2(Buffer.from([198, 51, 100, 9]))), login('over-mqtts')),
      await client(ws('ws', app.wsPort, v1('TCP6', '2001:db8::5')), login('over-ws')),
      await client(ws('wss', app.wssPort, v2(Buffer.from('20010db8000000000000000000000006', 'hex'))), login('over-wss')),
    );
    const res = await app.api('GET', '/api/v1/tenants/acme/sessions');
    expect(res.status).toBe(200);
    const addresses = Object.fromEntries(res.body.items.map((s: { clientId: string; remoteAddress: string }) => [s.clientId, s.remoteAddress]));
    expect(addresses).toEqual({ 'over-mqtt': '203.0.113.7', 'over-mqtts': '198.51.100.9', 'over-ws': '2001:db8::5', 'over-wss': '2001:db8::6' });
  });

  it('locks out the address that failed, not every client behind the balancer', async () => {
    const attempt = (address: string, password: string) => connackAfter(app.mqttPort, [v1('TCP4', address), connectPacket(`c-${address}`, 'acme:d1', password)]);
    for (let i = 0; i < 3; i++) expect(await attempt('203.0.113.66', 'wrong')).toBe(4);
    // locked out: even the right password is refused from there...
    expect(await attempt('203.0.113.66', 'right-password')).toBe(5);
    // ...while the same device from another address behind the same balancer connects
    expect(await attempt('203.0.113.67', 'right-password')).toBe(0);
  });

  it('closes connections without a valid header (only the balancer may connect) and counts them; a header sent a byte at a time is fine', async () => {
    const refusals = async () => parsePrometheus(await (await fetch(`${app.http}/metrics`)).text()).value('mqtt_proxy_header_refused_total') ?? 0;
    const before = await refusals();
    const mqttConnect = connectPacket('no-header', 'acme:d1', 'right-password');
    expect(await connackAfter(app.mqttPort, [mqttConnect])).toBe('closed');
    expect(await connackAfter(app.mqttPort, [Buffer.from('PROXY TCP4 999.0.113.7 10.0.0.1 40000 1883\r\n'), mqttConnect])).toBe('closed');
    // nothing at all, or half a header: closed at the CONNECT deadline
    const t0 = Date.now();
    expect(await Promise.all([connackAfter(app.mqttPort, []), connackAfter(app.mqttPort, [Buffer.from('PROXY TCP4 203.0.')])])).toEqual(['closed', 'closed']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(await refusals()).toBe(before + 4);
    const split = [...v1('TCP4', '203.0.113.8')].map((b) => Buffer.from([b]));
    expect(await connackAfter(app.mqttPort, [...split, mqttConnect])).toBe(0);
  });
});
