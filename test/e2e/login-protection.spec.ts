import net from 'node:net';
import { MqttClient } from 'mqtt';
import { databaseKind, startTestApp, TestApp } from '../helpers/app';
import { rawConnack } from '../helpers/mqtt';
import { parsePrometheus } from '../helpers/prometheus';

/**
 * Failed-login protection (DESIGN.md "Failed logins") and the verified-credential cache, with
 * mqtt.js clients bound to several loopback addresses (127.0.0.0/8 all reach the listener).
 */
describe(`login protection (${databaseKind()})`, () => {
  let app: TestApp;
  const pw = 'right-password';
  const BASE_DELAY_MS = 20;

  /** CONNACK return code of a connect from `from` (0: accepted, then closed). */
  const attempt = (from: string, username: string, password: string): Promise<number> =>
    new Promise((resolve, reject) => {
      const client = new MqttClient(() => net.connect({ port: app.mqttPort, host: '127.0.0.1', localAddress: from }), {
        username,
        password,
        reconnectPeriod: 0,
        connectTimeout: 10_000,
        protocolVersion: 4,
        clientId: `c-${Math.random().toString(36).slice(2)}`,
      });
      client.on('connect', () => {
        client.end(true);
        resolve(0);
      });
      client.on('error', (err: Error & { code?: unknown }) => {
        client.end(true);
        if (typeof err.code === 'number') resolve(err.code);
        else reject(err);
      });
    });

  const metrics = async () => parsePrometheus(await (await fetch(`${app.http}/metrics`)).text());

  beforeAll(async () => {
    // the contract's thresholds (10 per address, 5 per device and address), a short base delay
    app = await startTestApp({
      AUTH_FAIL_DELAY_MS: String(BASE_DELAY_MS),
      AUTH_FAIL_MAX_PER_ADDRESS: '10',
      AUTH_FAIL_MAX_PER_DEVICE: '5',
    });
    await app.createTenant('acme');
    for (const name of ['d1', 'd2', 'd3']) await app.createDevice('acme', name, pw);
    await app.allow('acme');
  });

  afterAll(async () => {
    await app?.close();
  });

  it('slows, then locks out a device from one address; the device still works from elsewhere', async () => {
    const from = '127.0.0.2';
    const started = Date.now();
    for (let i = 0; i < 5; i++) expect(await attempt(from, 'acme:d1', 'wrong-password')).toBe(4);
    // each refusal waited 1, 2, 4, 8 and 16 times the base delay (a lower bound, not a benchmark)
    expect(Date.now() - started).toBeGreaterThanOrEqual(31 * BASE_DELAY_MS);

    // locked: refused even with the right password, before any bcrypt work
    const before = (await metrics()).value('mqtt_auth_bcrypt_comparisons_total') ?? 0;
    expect(await attempt(from, 'acme:d1', pw)).toBe(5);
    expect((await metrics()).value('mqtt_auth_bcrypt_comparisons_total')).toBe(before);

    // the device from another address, and another device from that address, are fine
    expect(await attempt('127.0.0.3', 'acme:d1', pw)).toBe(0);
    expect(await attempt(from, 'acme:d2', pw)).toBe(0);

    const m = await metrics();
    expect(m.value('mqtt_connects_total', { tenant: 'acme', result: 'locked-out-device' })).toBe(1);
    expect(m.value('mqtt_auth_lockouts_total')).toBeGreaterThanOrEqual(1);
  });

  it('locks out an address after 10 failures, whatever the usernames', async () => {
    const from = '127.0.0.4';
    for (let i = 0; i < 4; i++) {
      expect(await attempt(from, 'acme:d2', 'wrong-password')).toBe(4);
      expect(await attempt(from, `acme:nobody-${i}`, 'guess')).toBe(4);
    }
    expect(await attempt(from, 'nosuchtenant:x', 'guess')).toBe(4);
    expect(await attempt(from, 'acme:d3', 'wrong-password')).toBe(4); // the 10th
    for (const device of ['d1', 'd2', 'd3']) expect(await attempt(from, `acme:${device}`, pw)).toBe(5);
    expect(await attempt('127.0.0.5', 'acme:d2', pw)).toBe(0);
    expect((await metrics()).value('mqtt_connects_total', { tenant: 'acme', result: 'locked-out-address' })).toBe(3);
  });

  it('a reconnect storm of 1,000 clients pays bcrypt once per device, then not at all', async () => {
    const devices = Array.from({ length: 20 }, (_, i) => `storm-${i}`);
    for (const name of devices) await app.createDevice('acme', name, pw);
    const comparisons = async () => (await metrics()).value('mqtt_auth_bcrypt_comparisons_total') ?? 0;
    const storm = async (password: (device: string) => string) => {
      const codes: number[] = [];
      for (let batch = 0; batch < 10; batch++) {
        const round = Array.from({ length: 100 }, (_, i) => {
          const device = devices[(batch * 100 + i) % devices.length];
          return rawConnack(app.mqttPort, { clientId: `storm-${batch}-${i}`, clean: true, username: `acme:${device}`, password: password(device) });
        });
        codes.push(...(await Promise.all(round)));
      }
      return codes;
    };

    const start = await comparisons();
    expect(new Set(await storm(() => pw))).toEqual(new Set([0]));
    const firstRound = (await comparisons()) - start;
    expect(firstRound).toBeGreaterThan(0);
    expect(firstRound).toBeLessThanOrEqual(devices.length); // concurrent connects share one comparison
    expect(new Set(await storm(() => pw))).toEqual(new Set([0]));
    expect((await comparisons()) - start).toBe(firstRound); // the second round: none

    // a rotated password is checked again; the old one no longer works
    const rotated = await app.api('POST', '/api/v1/tenants/acme/devices/storm-0/password', {});
    expect(rotated.status).toBe(200);
    const fresh = rotated.body.password as string;
    expect(await rawConnack(app.mqttPort, { clientId: 'after-rotation', clean: true, username: 'acme:storm-0', password: pw })).toBe(4);
    expect(await rawConnack(app.mqttPort, { clientId: 'after-rotation', clean: true, username: 'acme:storm-0', password: fresh })).toBe(0);
    expect((await comparisons()) - start).toBe(firstRound + 2);
  });

  it('a right password clears the failures of that device from that address', async () => {
    const from = '127.0.0.6';
    for (let i = 0; i < 4; i++) expect(await attempt(from, 'acme:d3', 'wrong-password')).toBe(4);
    expect(await attempt(from, 'acme:d3', pw)).toBe(0);
    for (let i = 0; i < 4; i++) expect(await attempt(from, 'acme:d3', 'wrong-password')).toBe(4);
    expect(await attempt(from, 'acme:d3', pw)).toBe(0);
  });
});
