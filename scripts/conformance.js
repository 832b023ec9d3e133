#!/usr/bin/env node
'use strict';
/**
 * npm run conformance
 *
 * Runs the third-party MQTT conformance suites (../shared/conformance/run.sh: Paho's
 * interoperability test, mosquitto's broker scripts and its packet sequences) against the
 * whole service, through the tenant path: the service is started on free loopback ports with
 * ANONYMOUS_TENANT=conformance, the tenant and its ACL (everything allowed, `test/nosubscribe`
 * refused for subscribe, which the suites expect) are created over REST, and the suites connect
 * without credentials, so every packet goes through the mountpoint, the namespaced client ids
 * and the ACL hooks.
 *
 * Prints the suites' summary and exits 0 when at least CONFORMANCE_MIN_PASS tests passed (312).
 * Environment: CONFORMANCE_DIR (default ../shared/conformance from the repo root), SUITES,
 * LOG_DIR, MQTT5, ... (passed through to run.sh), CONFORMANCE_NO_BUILD=1 (use dist/ as it is),
 * CONFORMANCE_KEEP=1 (keep the data directory and the service log).
 * When the suites are absent it says so loudly and exits 0.
 */
const { spawn, spawnSync } = require('node:child_process');
const { randomBytes } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const readline = require('node:readline');

const ROOT = path.resolve(__dirname, '..');
const SUITES_DIR = path.resolve(process.env.CONFORMANCE_DIR || path.join(ROOT, '..', 'shared', 'conformance'));
const RUN_SH = path.join(SUITES_DIR, 'run.sh');
const MAIN = path.join(ROOT, 'dist', 'src', 'main.js');
const TENANT = 'conformance';
const START_TIMEOUT_MS = 120_000;
const RUN_TIMEOUT_MS = 30 * 60_000;

function banner(lines) {
  const width = Math.max(...lines.map((l) => l.length)) + 4;
  const bar = '#'.repeat(width);
  console.log([bar, ...lines.map((l) => `# ${l.padEnd(width - 4)} #`), bar].join('\n'));
}

function newestMtime(dir) {
  let newest = 0;
  const stack = [dir];
  while (stack.length > 0) {
    const d = stack.pop();
    for (const entry of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, entry.name);
      if (entry.isDirectory()) stack.push(p);
      else if (entry.name.endsWith('.ts')) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  }
  return newest;
}

function buildIfNeeded() {
  if (process.env.CONFORMANCE_NO_BUILD === '1') return;
  const built = fs.existsSync(MAIN) ? fs.statSync(MAIN).mtimeMs : 0;
  if (built > 0 && built >= newestMtime(path.join(ROOT, 'src'))) return;
  console.log('conformance: building (npm run build)');
  const r = spawnSync('npm', ['run', 'build'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error('build failed');
}

/** Starts the service; resolves with its ports once it logs "listening". */
function startService(env, logFile) {
  const child = spawn(process.execPath, [MAIN], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = fs.createWriteStream(logFile);
  child.stderr.pipe(log);
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not log "listening" within ${START_TIMEOUT_MS} ms (log: ${logFile})`)), START_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`service exited (${code ?? signal}) before listening (log: ${logFile})`));
    });
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      log.write(line + '\n');
      let entry;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      if (entry.msg === 'listening' && typeof entry.mqtt === 'number') {
        clearTimeout(timer);
        resolve(entry);
      }
    });
  });
  return { child, ready };
}

async function stopService(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

async function api(base, token, method, route, body) {
  const res = await fetch(base + route, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function provision(base, token) {
  await api(base, token, 'POST', '/api/v1/tenants', { slug: TENANT });
  const acls = `/api/v1/tenants/${TENANT}/acls`;
  // everything, for every device of the tenant (anonymous connects included)...
  await api(base, token, 'POST', acls, { device: null, action: 'all', topic: '#', permission: 'allow', priority: 0 });
  // ...except the one filter the suites expect a broker to refuse (SUBACK 0x80)
  await api(base, token, 'POST', acls, { device: null, action: 'subscribe', topic: 'test/nosubscribe', permission: 'deny', priority: 10 });
}

/** Runs run.sh, echoing its output, and resolves with its exit status and its summary counts. */
function runSuites(port) {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [RUN_SH, '127.0.0.1', String(port)], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env });
    const timer = setTimeout(() => child.kill('SIGTERM'), RUN_TIMEOUT_MS);
    let summary = null;
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      process.stdout.write(line + '\n');
      const m = /^conformance: (\d+) passed, (\d+) failed, (\d+) skipped/.exec(line);
      if (m) summary = { passed: Number(m[1]), failed: Number(m[2]), skipped: Number(m[3]) };
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 1 : 0), summary });
    });
  });
}

/**
 * The known remaining failures are documented in docs/conformance.md; the run fails when fewer
 * than CONFORMANCE_MIN_PASS tests pass (312 of 318 for MQTT 3.1.1, the bar), so a drop
 * is caught while the documented ones don't turn CI red.
 */
function verdict({ code, summary }) {
  const min = Number(process.env.CONFORMANCE_MIN_PASS || (process.env.MQTT5 ? 0 : 312));
  if (!summary) {
    console.log(`conformance: no summary from run.sh (exit ${code}): FAILED`);
    return code || 1;
  }
  const ok = summary.passed >= min;
  console.log(
    `conformance verdict: ${summary.passed} of ${summary.passed + summary.failed + summary.skipped} passed, ` +
      `minimum ${min}: ${ok ? 'OK' : 'FAILED'} (remaining failures explained in docs/conformance.md)`,
  );
  return ok ? 0 : 1;
}

async function main() {
  if (!fs.existsSync(RUN_SH)) {
    banner([
      'SKIP: MQTT conformance suites not found',
      `expected ${RUN_SH}`,
      'set CONFORMANCE_DIR to a checkout of the shared conformance suites',
      'NOTHING WAS TESTED',
    ]);
    return 0;
  }
  buildIfNeeded();

  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-conformance-'));
  const logFile = path.join(dataDir, 'service.log');
  const token = randomBytes(24).toString('hex');
  const env = {
    ...process.env,
    HOST: '127.0.0.1',
    HTTP_PORT: '0',
    MQTT_PORT: '0',
    MQTTS_PORT: '0',
    WS_PORT: '0',
    WSS_PORT: '0',
    DATA_DIR: dataDir,
    ADMIN_TOKEN: token,
    ANONYMOUS_TENANT: TENANT,
    LOG_LEVEL: process.env.LOG_LEVEL || 'warn',
  };
  // a DATABASE_URL or REDIS_URL from the caller's shell would aim the run at shared state
  delete env.DATABASE_URL;
  delete env.REDIS_URL;

  const { child, ready } = startService(env, logFile);
  let status = 1;
  try {
    const ports = await ready;
    console.log(`conformance: service listening (mqtt ${ports.mqtt}, http ${ports.http}), tenant "${TENANT}"`);
    await provision(`http://127.0.0.1:${ports.http}`, token);
    status = verdict(await runSuites(ports.mqtt));
    if (child.exitCode !== null) {
      console.log(`conformance: the service died during the run (exit ${child.exitCode}); log: ${logFile}`);
      status = status || 1;
    }
  } finally {
    await stopService(child);
    if (process.env.CONFORMANCE_KEEP === '1' || status !== 0) {
      console.log(`conformance: service log and data kept in ${dataDir}`);
    } else {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  }
  return status;
}

main().then(
  (status) => process.exit(status),
  (err) => {
    console.error(`conformance: ${err.message}`);
    process.exit(1);
  },
);
