/**
 * 10,000 half-open TCP connections (issue #9): sockets that connect and never send a byte, and
 * slow lorises that send the first byte of a CONNECT and nothing more. The service runs in a
 * process of its own (`node dist/src/main.js`): each process may hold 20,000 open files here,
 * and the crowd needs 10,000 on either side. Two other tenants publish and receive at QoS 1
 * throughout. The broker must close every one of them at the CONNECT deadline, the tenants must
 * stay connected and receive everything in order, and the service's open files must return to
 * where they were.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeOnce } from '../helpers/app';
import { AppProcess } from '../helpers/app-process';
import { Watch } from '../helpers/watch';

jest.setTimeout(180_000);

const WANTED = 10_000;
// long enough for the whole crowd to be open at once (opening it takes ~7 s here)
const CONNECT_TIMEOUT_MS = 15_000;
/** this process's open-files limit, less what jest and the clients of the test need */
const openFilesLimit = Number(execFileSync('/bin/sh', ['-c', 'ulimit -n']).toString().trim()) || 1024;
const CROWD = Math.min(WANTED, openFilesLimit - 1000);
if (CROWD < WANTED) {
  console.warn(`half-open: the open-files limit is ${openFilesLimit}: holding ${CROWD} connections, not ${WANTED} (ulimit -n 20000 for the full test)`);
}

const openFiles = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;

describeOnce('robustness: a crowd of half-open connections', () => {
  const token = randomBytes(16).toString('hex');
  const dataDir = mkdtempSync(join(tmpdir(), 'half-open-'));
  let node: AppProcess;
  const watches: Watch[] = [];

  beforeAll(async () => {
    node = await AppProcess.start('half-open', {
      DATA_DIR: dataDir,
      ADMIN_TOKEN: token,
      CONNECT_TIMEOUT_MS: String(CONNECT_TIMEOUT_MS),
      AUTH_FAIL_DELAY_MS: '0',
    });
    for (const slug of ['watch-a', 'watch-b']) {
      await node.createTenantWithDevice(token, slug, `${slug}-password`);
      watches.push(await Watch.connect(`mqtt://127.0.0.1:${node.ports.mqtt}`, slug, `${slug}:dev`, `${slug}-password`));
    }
  });

  afterAll(async () => {
    await Promise.all(watches.map((w) => w.end()));
    await node?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it(`closes ${CROWD} half-open connections at the CONNECT deadline, and nobody else notices`, async () => {
    const baseFiles = openFiles(node.pid);
    for (const w of watches) w.start(10);

    let closed = 0;
    let allClosed!: () => void;
    const everyoneClosed = new Promise<void>((r) => (allClosed = r));
    const crowd: Socket[] = [];
    // in waves, so that the listen backlog (511) is not what refuses them
    for (let i = 0; i < CROWD; i += 500) {
      const wave: Promise<void>[] = [];
      for (let k = i; k < Math.min(CROWD, i + 500); k++) {
        const s = tcpConnect(node.ports.mqtt, '127.0.0.1');
        s.on('error', () => undefined);
        s.on('close', () => ++closed === CROWD && allClosed());
        wave.push(
          new Promise((r) =>
            s.once('connect', () => {
              if (k % 10 === 0) s.write(Buffer.from([0x10])); // a slow loris: the first byte of a CONNECT
              r();
            }),
          ),
        );
        crowd.push(s);
      }
      await Promise.all(wave);
    }
    // all of them were open at once on the service's side: our 'connect' fires once the kernel has
    // queued the connection, which the service may not have accepted yet
    const acceptedBy = Date.now() + 5000;
    while (openFiles(node.pid) < baseFiles + CROWD && Date.now() < acceptedBy) await new Promise((r) => setTimeout(r, 20));
    expect(openFiles(node.pid)).toBeGreaterThanOrEqual(baseFiles + CROWD);

    // within aedes' own connectTimeout (30 s), so that only our deadline can pass this
    const deadline = new Promise<void>((r) => setTimeout(r, CONNECT_TIMEOUT_MS + 10_000));
    await Promise.race([everyoneClosed, deadline]);
    expect(closed).toBe(CROWD);
    // closed by the broker: the test never ends them
    expect(crowd.every((s) => s.destroyed)).toBe(true);

    for (const w of watches) await w.stop();
    for (const w of watches) {
      expect(w.disconnects).toBe(0);
      expect(w.foreign).toBe(0);
      expect(w.received).toEqual(Array.from({ length: w.sent }, (_, i) => i));
    }
    expect(openFiles(node.pid)).toBeLessThanOrEqual(baseFiles);
    expect((await fetch(`${node.http}/health/live`)).status).toBe(200);
  });
});
