'use strict';
// The brokers under test, each in its own child process pinned to the server cpus:
// bare aedes (bench/servers/aedes.js), Mosquitto (temp config), and our service
// (node dist/src/main.js) on PGlite or PostgreSQL.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const readline = require('node:readline');
const { spawnSync } = require('node:child_process');
const {
  spawnPinned, procStatus, procCpuSeconds, freePort, waitForPort, stopChild, commandExists, tryExec, shq,
} = require('./proc');
const { Rest } = require('./rest');

const REPO = path.resolve(__dirname, '..', '..');
const MOSQUITTO = process.env.MOSQUITTO_BIN || '/usr/sbin/mosquitto';

/** reads the child's stdout line by line until a pino line with msg "listening" */
function waitListening(child, label, logFile, timeoutMs) {
  return new Promise((resolve, reject) => {
    const log = fs.createWriteStream(logFile, { flags: 'a' });
    const tail = [];
    let done = false;
    const rl = readline.createInterface({ input: child.stdout });
    const finish = (err, v) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(Object.assign(err, { tail: tail.join('\n') }));
      else resolve(v);
    };
    const timer = setTimeout(() => finish(new Error(`${label}: no "listening" line within ${timeoutMs} ms (log: ${logFile})`)), timeoutMs);
    rl.on('line', (line) => {
      log.write(line + '\n');
      tail.push(line);
      if (tail.length > 30) tail.shift();
      if (done || !line.includes('"listening"')) return;
      try {
        const j = JSON.parse(line);
        if (j.msg === 'listening' && Number.isInteger(j.mqtt)) finish(null, j);
      } catch { /* not json */ }
    });
    child.stderr?.on('data', (d) => {
      log.write(d);
      for (const l of d.toString().split('\n')) if (l) tail.push(l);
      while (tail.length > 30) tail.shift();
    });
    child.once('exit', (code, sig) => finish(new Error(`${label} exited (${code ?? sig}) before listening. Last output:\n${tail.join('\n')}`)));
  });
}

class BaseServer {
  constructor({ name, label, cpus, tmp }) {
    this.name = name;
    this.label = label;
    this.cpus = cpus;
    this.tmp = tmp;
    this.child = null;
    this.mqttPort = null;
    this.httpPort = null;
    this.starts = 0;
    this.extraEnv = {};
    this.nodeArgs = [];
  }

  get pid() {
    return this.child ? this.child.pid : null;
  }

  status() {
    return this.pid ? procStatus(this.pid) : null;
  }

  cpuSeconds() {
    return this.pid ? procCpuSeconds(this.pid) : null;
  }

  async restart() {
    await this.stop();
    await this.start();
  }

  async stop() {
    if (!this.child) return;
    const c = this.child;
    this.child = null;
    await stopChild(c, 8000);
  }

  /** Prometheus metrics (aedes child and service), or null */
  async metrics() {
    if (!this.httpPort) return null;
    const r = new Rest({ port: this.httpPort, token: null, maxSockets: 1 });
    try {
      return await r.metrics();
    } catch {
      return null;
    } finally {
      r.close();
    }
  }
}

class AedesServer extends BaseServer {
  /** o.coalesce: the `aedes-coalesced` column (bare aedes + the service's write coalescing) */
  constructor(o) {
    super(o.coalesce ? { name: 'aedes-coalesced', label: 'bare aedes + coalesced writes', ...o } : { name: 'aedes', label: 'bare aedes', ...o });
    this.kind = 'aedes';
    this.anonymous = true;
    if (o.coalesce) this.extraEnv = { BENCH_AEDES_COALESCE: '1' };
  }

  async start() {
    const logFile = path.join(this.tmp, `${this.name}.log`);
    const args = [...(this.nodeArgs || []), path.join(__dirname, '..', 'servers', 'aedes.js')];
    this.child = spawnPinned(process.execPath, args, {
      cpus: this.cpus, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, HOST: '127.0.0.1', ...this.extraEnv },
    });
    const j = await waitListening(this.child, this.label, logFile, 20000);
    this.mqttPort = j.mqtt;
    this.httpPort = j.http;
    this.starts++;
  }
}

class MosquittoServer extends BaseServer {
  constructor(o) {
    super({ name: 'mosquitto', label: 'mosquitto', ...o });
    this.kind = 'mosquitto';
    this.anonymous = true;
  }

  static available() {
    return commandExists(MOSQUITTO);
  }

  static version() {
    const v = tryExec(MOSQUITTO, ['-h']);
    const m = v && v.match(/mosquitto version (\S+)/);
    return m ? m[1] : null;
  }

  async start() {
    const port = await freePort();
    const conf = path.join(this.tmp, 'mosquitto.conf');
    // Comparable to bare aedes: no persistence, no logging, no inflight/queue caps that
    // aedes does not have either, Nagle off.
    fs.writeFileSync(conf, [
      `listener ${port} 127.0.0.1`,
      'allow_anonymous true',
      'persistence false',
      'log_dest none',
      'set_tcp_nodelay true',
      'max_inflight_messages 0',
      'max_queued_messages 1000000',
      'max_queued_bytes 0',
      'max_connections -1',
      'user root',
      '',
    ].join('\n'));
    this.child = spawnPinned(MOSQUITTO, ['-c', conf], { cpus: this.cpus, stdio: ['ignore', 'ignore', 'pipe'] });
    const stderr = [];
    this.child.stderr.on('data', (d) => stderr.push(d.toString()));
    const exited = new Promise((_, reject) => this.child.once('exit', (c) => reject(new Error(`mosquitto exited (${c}): ${stderr.join('')}`))));
    await Promise.race([waitForPort(port, 10000), exited]);
    exited.catch(() => {});
    this.mqttPort = port;
    this.starts++;
  }
}

/**
 * The node flags `npm start` gives the service (package.json: "start": "node <flags> dist/src/main.js"):
 * the bench measures the service as it is run, settings included.
 */
function startFlags(dir) {
  const start = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).scripts?.start ?? '';
  const m = /^node\s+(.*?)\s*dist\/src\/main\.js$/.exec(start.trim());
  return m ? m[1].split(/\s+/).filter(Boolean) : [];
}

/** our service; `db` is 'pglite' or 'postgres' (then `databaseUrl`) */
class ServiceServer extends BaseServer {
  constructor({ db, databaseUrl, dir = REPO, ...o }) {
    super({ name: db === 'postgres' ? 'service-pg' : 'service', label: db === 'postgres' ? 'service (PostgreSQL)' : 'service (PGlite)', ...o });
    this.kind = 'service';
    this.anonymous = false;
    this.db = db;
    this.dir = dir;
    this.databaseUrl = databaseUrl;
    this.dataDir = fs.mkdtempSync(path.join(this.tmp, `${this.name}-data-`));
    this.adminToken = crypto.randomBytes(24).toString('base64url');
    this.ports = null;
    this.rest = null;
  }

  async start() {
    const logFile = path.join(this.tmp, `${this.name}.log`);
    const env = {
      ...process.env,
      HOST: '127.0.0.1', HTTP_PORT: '0', MQTT_PORT: '0', MQTTS_PORT: '0', WS_PORT: '0', WSS_PORT: '0',
      DATA_DIR: this.dataDir, ADMIN_TOKEN: this.adminToken, LOG_LEVEL: 'warn', ...this.extraEnv,
    };
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
    if (this.db === 'postgres') env.DATABASE_URL = this.databaseUrl;
    const args = [...startFlags(this.dir), ...(this.nodeArgs || []), path.join(this.dir, 'dist', 'src', 'main.js')];
    this.child = spawnPinned(process.execPath, args, { cpus: this.cpus, cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    const j = await waitListening(this.child, this.label, logFile, 120000);
    this.ports = j;
    this.mqttPort = j.mqtt;
    this.httpPort = j.http;
    if (this.rest) this.rest.close();
    this.rest = new Rest({ port: this.httpPort, token: this.adminToken });
    this.starts++;
  }

  async stop() {
    if (this.rest) {
      this.rest.close();
      this.rest = null;
    }
    await super.stop();
  }
}

// --- build ---------------------------------------------------------------------------------

function newestMtime(dir, skip) {
  let newest = 0;
  const stack = [dir];
  let visited = 0;
  while (stack.length && visited < 20000) {
    const d = stack.pop();
    visited++;
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (skip && skip(p)) continue;
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) newest = Math.max(newest, fs.statSync(p).mtimeMs);
    }
  }
  return newest;
}

/** builds dist/ with `npm run build` when dist/src/main.js is missing or older than src/ */
function ensureBuild(log, dir = REPO) {
  const main = path.join(dir, 'dist', 'src', 'main.js');
  if (!fs.existsSync(path.join(dir, 'src', 'main.ts'))) return { ok: false, reason: `${dir}/src/main.ts does not exist` };
  const built = fs.existsSync(main) ? fs.statSync(main).mtimeMs : 0;
  const src = newestMtime(path.join(dir, 'src'), (p) => p.endsWith('.spec.ts'));
  if (built && built >= src) return { ok: true, built: false };
  log(`building the service in ${dir} (npm run build): dist is ${built ? 'older than src' : 'missing'}`);
  const r = spawnSync('npm', ['run', 'build'], { cwd: dir, encoding: 'utf8', timeout: 300000 });
  if (r.status !== 0 || !fs.existsSync(main)) {
    return { ok: false, reason: `npm run build failed (${r.status}): ${(r.stdout + r.stderr).split('\n').slice(-15).join('\n')}` };
  }
  return { ok: true, built: true };
}

// --- PostgreSQL ----------------------------------------------------------------------------

function findPgBin() {
  const candidates = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  try {
    for (const v of fs.readdirSync('/usr/lib/postgresql').sort().reverse()) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch { /* none */ }
  candidates.push('/usr/bin', '/usr/local/bin');
  return candidates.find((d) => commandExists(path.join(d, 'initdb')) && commandExists(path.join(d, 'pg_ctl'))) || null;
}

/** a throwaway PostgreSQL (TOOLCHAIN.md §2), or the one in DATABASE_URL */
class Postgres {
  constructor({ tmp, cpus }) {
    this.tmp = tmp;
    this.cpus = cpus;
    this.url = null;
    this.dir = null;
    this.bin = null;
    this.external = false;
  }

  static available() {
    return Boolean(process.env.DATABASE_URL) || Boolean(findPgBin());
  }

  async start() {
    if (process.env.DATABASE_URL) {
      this.url = process.env.DATABASE_URL;
      this.external = true;
      return this.url;
    }
    this.bin = findPgBin();
    if (!this.bin) throw new Error('no initdb/pg_ctl found');
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-pg-'));
    const asRoot = process.getuid && process.getuid() === 0;
    const wrap = (cmd, args) => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
    if (asRoot) spawnSync('chown', ['postgres', this.dir]);
    const port = await freePort();
    const [c1, a1] = wrap(path.join(this.bin, 'initdb'), ['-D', path.join(this.dir, 'data'), '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']);
    let r = spawnSync(c1, a1, { encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) throw new Error(`initdb failed: ${r.stderr || r.stdout}`);
    const opts = `-p ${port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200`;
    const pgctl = [path.join(this.bin, 'pg_ctl'), '-D', path.join(this.dir, 'data'), '-l', path.join(this.dir, 'pg.log'), '-w', '-o', opts, 'start'];
    // pinned with the generators: the database stands for another machine, not the broker's core
    const line = `${this.cpus !== undefined && require('./proc').taskset() ? `taskset -c ${this.cpus} ` : ''}${pgctl.map(shq).join(' ')}`;
    const [c2, a2] = wrap('/bin/sh', ['-c', line]);
    r = spawnSync(c2, a2, { encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) throw new Error(`pg_ctl start failed: ${r.stderr || r.stdout}`);
    this.asRoot = asRoot;
    this.url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
    return this.url;
  }

  stop() {
    if (this.external || !this.dir) return;
    const args = [path.join(this.bin, 'pg_ctl'), '-D', path.join(this.dir, 'data'), '-m', 'immediate', 'stop'];
    if (this.asRoot) spawnSync('runuser', ['-u', 'postgres', '--', ...args], { timeout: 30000 });
    else spawnSync(args[0], args.slice(1), { timeout: 30000 });
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.dir = null;
  }

  version() {
    if (this.external) return 'external (DATABASE_URL)';
    return this.bin ? tryExec(path.join(this.bin, 'pg_ctl'), ['--version']) : null;
  }
}

module.exports = { AedesServer, MosquittoServer, ServiceServer, Postgres, ensureBuild, startFlags, REPO };
