/**
 * Renewing the server certificate without a restart, as a certbot deploy hook does it with
 * Mosquitto 2: replace the TLS_CERT/TLS_KEY files, send SIGHUP. The service runs in a process of
 * its own (`node dist/src/main.js`), so the signal and its handler are the real ones.
 */
import { randomBytes, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import mqtt, { type MqttClient } from 'mqtt';
import { createCertificateAuthority, createServerCertificate } from '../../src/certificates/pki';
import { describeOnce } from '../helpers/app';
import { AppProcess } from '../helpers/app-process';

jest.setTimeout(60_000);

/** The fingerprint of the certificate a TLS listener serves, verified against `ca` for localhost. */
function servedFingerprint(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.once('error', reject);
  });
}

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;

describeOnce('TLS: a renewed server certificate, read again on SIGHUP', () => {
  const token = randomBytes(16).toString('hex');
  const dir = mkdtempSync(join(tmpdir(), 'tls-reload-'));
  const certFile = join(dir, 'server.crt');
  const keyFile = join(dir, 'server.key');
  let node: AppProcess | undefined;
  let client: MqttClient | undefined;

  afterAll(async () => {
    await client?.endAsync();
    await node?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the new pair to new MQTTS and WSS handshakes, keeps connected clients, and keeps the old pair while the files do not fit', async () => {
    const ca = await createCertificateAuthority({ commonName: 'ops CA', keyAlgorithm: 'ec-p256', validityDays: 30 });
    const issue = () => createServerCertificate({ ca, hostnames: ['localhost'], ips: ['127.0.0.1'], validityDays: 10 });
    const first = await issue();
    const renewed = await issue();
    writeFileSync(certFile, first.certificatePem);
    writeFileSync(keyFile, first.privateKeyPem);
    const broker = await AppProcess.start('tls-reload', { DATA_DIR: join(dir, 'data'), ADMIN_TOKEN: token, TLS_CERT: certFile, TLS_KEY: keyFile });
    node = broker;
    const served = () => Promise.all([servedFingerprint(broker.ports.mqtts, ca.certificatePem), servedFingerprint(broker.ports.wss, ca.certificatePem)]);
    expect(await served()).toEqual([fingerprint(first.certificatePem), fingerprint(first.certificatePem)]);

    await broker.createTenantWithDevice(token, 'acme', 'acme-password');
    const connected = await mqtt.connectAsync(`mqtts://127.0.0.1:${broker.ports.mqtts}`, {
      ca: ca.certificatePem, servername: 'localhost', username: 'acme:dev', password: 'acme-password', reconnectPeriod: 0,
    });
    client = connected;
    let closes = 0;
    connected.on('close', () => closes++);
    await connected.subscribeAsync('renewal/#', { qos: 1 });
    const roundTrip = async (payload: string) => {
      const received = new Promise<string>((resolve) => connected.once('message', (_topic, message) => resolve(message.toString())));
      await connected.publishAsync('renewal/test', payload, { qos: 1 });
      return received;
    };
    expect(await roundTrip('before')).toBe('before');

    // a renewal half written (the key, not yet the certificate): refused, the old pair serves on
    writeFileSync(keyFile, renewed.privateKeyPem);
    broker.signal('SIGHUP');
    const refused = await broker.waitFor((l) => l.msg === 'server certificate not reloaded: the previous one still serves');
    expect(String(refused.reason)).toMatch(/not a usable certificate and matching key/);
    expect(await served()).toEqual([fingerprint(first.certificatePem), fingerprint(first.certificatePem)]);

    writeFileSync(certFile, renewed.certificatePem);
    broker.signal('SIGHUP');
    await broker.waitFor((l) => l.msg === 'server certificate reloaded');
    expect(await served()).toEqual([fingerprint(renewed.certificatePem), fingerprint(renewed.certificatePem)]);

    // the client connected over the old certificate never noticed
    expect(await roundTrip('after')).toBe('after');
    expect(closes).toBe(0);
    // and no private key reached the log
    expect(broker.output).not.toContain(renewed.privateKeyPem.split('\n')[1]);
    expect(broker.output).not.toContain(first.privateKeyPem.split('\n')[1]);
  });
});
