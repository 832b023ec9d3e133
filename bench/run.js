#!/usr/bin/env node
'use strict';
// npm run bench [-- --quick] [--only=fanin,latency] [--soak-seconds=600] [--out=file.json]
// Starts bare aedes, our service (PGlite, and PostgreSQL when available) and Mosquitto (when
// installed) as separate processes pinned to the server cpus, drives each with the same load
// generator processes pinned to the other cpus, and reports every figure as a ratio to bare
// aedes measured in the same run. See bench/README.md.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { Worker, askProfiler, startProfile, taskset, tryExec } = require('./lib/proc');
const { AedesServer, MosquittoServer, ServiceServer, Postgres, ensureBuild, startFlags, REPO } = require('./lib/servers');
const { evaluate, table, SERVICE } = require('./lib/report');
const { BENCH_LIMITS, addOpenDevice } = require('./lib/fixture');

const SCENARIOS = ['fanin', 'fanout', 'latency', 'storm', 'idle', 'acl', 'control', 'soak'].map((n) => require(`./scenarios/${n}`));
const ALIASES = { 1: 'fanin', 2: 'fanout', 3: 'latency', 4: 'storm', 5: 'idle', 6: 'acl', 7: 'control', 8: 'soak' };

const USAGE = `usage: npm run bench [-- options]
  --quick                 seconds-long smoke run (small counts, PGlite only unless --servers says otherwise, no soak, no file unless --out)
  --only=a,b              scenarios: ${SCENARIOS.map((s) => s.name).join(', ')} (or 1-8)
  --servers=a,b           columns: aedes, service, service-pg, mosquitto (default: all available; aedes is always run),
                          and aedes-coalesced (bare aedes + the service's write coalescing; only when asked for)
  --soak-seconds=N        soak duration per server (default 600; full mode only)
  --soak-rate=N           offered soak rate in msg/s instead of half the measured QoS 1 saturation
  --soak-servers=a,b      columns the soak runs (default: every node column); bare aedes is still started
  --soak-gc-every=N       also read memory after a forced full GC every N s of the steady window (default: start and end only)
  --reps=N                repetitions of the throughput/latency measurements (default 3, quick 1)
  --retries=N             re-measure a throughput run where neither server nor generator was busy (default 1, quick 0)
  --out=FILE              results file (default bench/results/<date>-<host>.json in full mode)
  --profile=a,b           CPU-profile the service (and bare aedes) during these scenarios
  --profile-alloc[=live]  with --profile: sample allocations instead of CPU (.heapprofile), all of
                          them, or (=live) only those still alive when the window ends
  --server-cpus=L --gen-cpus=L   taskset cpu lists (default: 0 and the rest)
  --storm-server-cpus=L   cpus of the servers during the connect storm (default: all, so bcrypt can spread)
  --duration-ms=N --warmup-ms=N   measured window and warm-up of the throughput scenarios
  --storm-cached-rounds=N  cached (round 2) connect storms per server, median reported (default 9, quick 1)
  --storm-devices=N --idle-connections=N --sessions=N --acl-rules=N --acl-tenants=N
  --node-args="A B"       extra node flags for the node servers (bare aedes and the service), e.g. "--max-semi-space-size=32"
  --gen-node-args="A B"   extra node flags for the load generators, e.g. "--trace-gc"
  --service-dir=DIR       run the service built in another checkout (default: this repo), e.g. to compare commits
  --keep-tmp              keep the temp dir (logs, data dirs)
`;

function parseArgs(argv) {
  const o = {};
  for (const a of argv) {
    if (a === '--help' || a === '-h') {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const m = a.match(/^--([a-z-]+)(?:=(.*))?$/);
    if (!m) throw new Error(`unknown argument ${a}\n${USAGE}`);
    o[m[1]] = m[2] === undefined ? true : m[2];
  }
  return o;
}

function machineInfo() {
  const cpus = os.cpus();
  return {
    host: os.hostname(),
    cpuModel: cpus[0] ? cpus[0].model : 'unknown',
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    kernel: os.release(),
    node: process.version,
    aedes: JSON.parse(fs.readFileSync(path.join(REPO, 'node_modules', 'aedes', 'package.json'), 'utf8')).version,
    mosquitto: MosquittoServer.available() ? MosquittoServer.version() : null,
    taskset: Boolean(taskset()),
    openFilesLimit: tryExec('/bin/sh', ['-c', 'ulimit -n']),
    loadAverageAtStart: os.loadavg(),
    commit: tryExec('git', ['-C', REPO, 'rev-parse', '--short', 'HEAD']),
    // bare aedes runs the node_modules copy, with the same patch-package patches the service gets
    patches: (() => {
      try {
        return fs.readdirSync(path.join(REPO, 'patches')).filter((f) => f.endsWith('.patch')).map((f) =>
          `${f} ${crypto.createHash('sha1').update(fs.readFileSync(path.join(REPO, 'patches', f))).digest('hex').slice(0, 10)}`);
      } catch {
        return [];
      }
    })(),
  };
}

/** scale of each mode */
function params(o) {
  const quick = Boolean(o.quick);
  const num = (k, d) => (o[k] !== undefined ? Number(o[k]) : d);
  const p = quick
    ? {
      quick, reps: num('reps', 1), retries: num('retries', 0), warmupMs: 400, durationMs: 1000, latencyRate: 2000, latencyMs: 1500,
      stormDevices: num('storm-devices', 30), stormCachedRounds: num('storm-cached-rounds', 1), stormConcurrency: 20, probeWarmMs: 1500, probeQuietMs: 800,
      idleConnections: num('idle-connections', 500), sessions: num('sessions', 500), sessionPasses: 1,
      deviceCreations: 20, aclRules: num('acl-rules', 100), aclTenants: num('acl-tenants', 20),
      soakSeconds: num('soak-seconds', 20), soakSampleMs: 2000,
    }
    : {
      quick, reps: num('reps', 3), retries: num('retries', 1), warmupMs: 1500, durationMs: 5000, latencyRate: 2000, latencyMs: 4000,
      stormDevices: num('storm-devices', 2000), stormCachedRounds: num('storm-cached-rounds', 9), stormConcurrency: 100, probeWarmMs: 5000, probeQuietMs: 10000,
      idleConnections: num('idle-connections', 19000), sessions: num('sessions', 10000), sessionPasses: 3,
      deviceCreations: 200, aclRules: num('acl-rules', 1000), aclTenants: num('acl-tenants', 1000),
      soakSeconds: num('soak-seconds', 600), soakSampleMs: 10000,
    };
  if (o['soak-rate']) p.soakRate = num('soak-rate');
  p.soakGcEverySeconds = num('soak-gc-every', 0);
  if (o['soak-servers']) p.soakServers = String(o['soak-servers']).split(',');
  if (o['duration-ms']) p.durationMs = num('duration-ms');
  if (o['warmup-ms']) p.warmupMs = num('warmup-ms');
  return p;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// everything started is registered here and undone on exit, failure or Ctrl-C
const cleanups = [];
let cleaning = null;
function cleanupAll() {
  cleaning ??= (async () => {
    for (const f of cleanups.splice(0).reverse()) {
      try {
        await f();
      } catch { /* best effort */ }
    }
  })();
  return cleaning;
}
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, () => {
    process.stderr.write(`\n[bench] ${sig}: stopping servers and generators\n`);
    cleanupAll().finally(() => process.exit(130));
  });
}

/** what 16 REST calls in flight look like */
async function concurrently(n, limit, fn) {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, n) }, async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      await fn(i);
    }
  });
  await Promise.all(lanes);
}

async function createTenant(ctx, s, slug, extra = {}) {
  let r = await s.rest.request('POST', '/api/v1/tenants', { slug, limits: BENCH_LIMITS, ...extra });
  if (r.status === 400) {
    ctx.note(`${s.name}: tenant limits ${JSON.stringify(BENCH_LIMITS)} refused (${r.text.slice(0, 200)}); default limits apply`);
    r = await s.rest.request('POST', '/api/v1/tenants', { slug, ...extra });
  }
  if (r.status !== 201 && r.status !== 200) throw new Error(`POST /tenants ${slug} -> ${r.status}: ${r.text.slice(0, 300)}`);
  return r.body;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const p = params(o);
  const cpuCount = os.cpus().length;
  const serverCpus = o['server-cpus'] ?? '0';
  const genCpus = o['gen-cpus'] ?? (cpuCount > 1 ? `1-${cpuCount - 1}` : '0');
  let only = null;
  if (o.only) only = new Set(String(o.only).split(',').map((s) => ALIASES[s.trim()] || s.trim()));
  if (only) for (const n of only) if (!SCENARIOS.find((s) => s.name === n)) throw new Error(`unknown scenario ${n}\n${USAGE}`);
  const selected = SCENARIOS.filter((s) => (only ? only.has(s.name) : !(p.quick && s.fullOnly)));
  const profileSet = new Set(o.profile ? String(o.profile).split(',').map((s) => ALIASES[s] || s) : []);

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mqtt-bench-'));
  cleanups.push(() => {
    if (!o['keep-tmp']) fs.rmSync(tmp, { recursive: true, force: true });
  });
  const rid = crypto.randomBytes(3).toString('hex');
  const log = (msg) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}\n`);
  const notes = [];
  const figures = [];
  const raw = {};
  const machine = machineInfo();
  log(`machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}; servers on cpus ${serverCpus}, generators on ${genCpus}${taskset() ? '' : ' (taskset missing: not pinned)'}; tmp ${tmp}`);

  // ---- columns ---------------------------------------------------------------------------
  const wanted = new Set(o.servers ? String(o.servers).split(',') : ['aedes', 'service', 'service-pg', 'mosquitto']);
  wanted.add('aedes');
  const servers = [new AedesServer({ cpus: serverCpus, tmp })];
  if (wanted.has('aedes-coalesced')) {
    const b = ensureBuild(log, REPO);
    if (b.ok) servers.push(new AedesServer({ cpus: serverCpus, tmp, coalesce: true }));
    else notes.push(`aedes-coalesced not measured: ${b.reason}`);
  }
  let pg = null;
  const everyServer = [];
  cleanups.push(async () => {
    for (const s of everyServer) await s.stop();
    if (pg) pg.stop();
  });
  if (wanted.has('service') || wanted.has('service-pg')) {
    const serviceDir = o['service-dir'] ? path.resolve(String(o['service-dir'])) : REPO;
    machine.serviceDir = serviceDir;
    machine.serviceCommit = tryExec('git', ['-C', serviceDir, 'rev-parse', '--short', 'HEAD']);
    // the service runs with the node flags of its `npm start`; bare aedes with node's defaults
    machine.serviceStartFlags = startFlags(serviceDir);
    const b = ensureBuild(log, serviceDir);
    if (!b.ok) {
      notes.push(`service not measured: ${b.reason}`);
      log(`service not measured: ${b.reason}`);
    } else {
      if (wanted.has('service')) servers.push(new ServiceServer({ db: 'pglite', cpus: serverCpus, tmp, dir: serviceDir }));
      if (wanted.has('service-pg') && (!p.quick || o.servers)) {
        if (Postgres.available()) {
          pg = new Postgres({ tmp, cpus: genCpus });
          try {
            const url = await pg.start();
            servers.push(new ServiceServer({ db: 'postgres', databaseUrl: url, cpus: serverCpus, tmp, dir: serviceDir }));
            machine.postgres = pg.version();
          } catch (err) {
            notes.push(`PostgreSQL column skipped: ${err.message}`);
            pg.stop();
            pg = null;
          }
        } else notes.push('PostgreSQL column skipped: no DATABASE_URL and no initdb/pg_ctl');
      }
    }
  }
  if (wanted.has('mosquitto')) {
    if (MosquittoServer.available()) servers.push(new MosquittoServer({ cpus: serverCpus, tmp }));
    else notes.push('Mosquitto column skipped: no mosquitto binary');
  }
  const columns = servers.map((s) => s.name);

  const profCtl = path.join(tmp, 'prof-ctl');
  const profileAlloc = !o['profile-alloc'] ? '' : o['profile-alloc'] === 'live' ? 'live' : 'all';
  const profDir = path.join(REPO, 'bench', 'results', 'profiles');
  if (profileSet.size) {
    fs.writeFileSync(profCtl, 'idle\n');
    for (const s of servers) {
      if (s.kind === 'mosquitto') continue;
      s.nodeArgs = ['-r', path.join(__dirname, 'lib', 'profiler.js')];
      s.extraEnv = { ...s.extraEnv, BENCH_PROF_CTL: profCtl, BENCH_PROF_DIR: profDir, BENCH_PROF_ALLOC: profileAlloc };
    }
  }

  const flags = (key) => (o[key] ? String(o[key]).split(/\s+/).filter(Boolean) : []);
  const genNodeArgs = flags('gen-node-args');
  if (o['node-args']) {
    const extra = flags('node-args');
    for (const s of servers) if (s.kind !== 'mosquitto') s.nodeArgs = [...extra, ...(s.nodeArgs || [])];
    machine.serverNodeArgs = extra;
  }

  everyServer.push(...servers);
  const workers = [];
  cleanups.push(async () => {
    for (const w of workers) await w.stop();
  });
  const ctx = {
    p, rid, tmp, log, servers, columns, serverCpus, genCpus, machine,
    sleep, concurrently, createTenant,
    note: (t) => {
      notes.push(t);
      log(`note: ${t}`);
    },
    figure: (f) => figures.push(f),
    raw: (scenario, key, value) => {
      raw[scenario] ??= {};
      raw[scenario][key] = value;
    },
    lastRaw: (scenario, key) => raw[scenario]?.[key],
    /** generator process i (created on first use, reused, all pinned to the generator cpus) */
    gen: (i = 0) => {
      while (workers.length <= i) workers.push(new Worker({ cpus: genCpus, label: `gen${workers.length}`, nodeArgs: genNodeArgs }));
      return workers[i];
    },
    /** a throwaway worker pinned like a server (bcrypt ceiling) */
    serverCpuWorker: (cpus = serverCpus, env = {}) => new Worker({ cpus, env, label: 'server-cpu-probe' }),
    stormServerCpus: o['storm-server-cpus'] ?? `0-${cpuCount - 1}`,
    /** connection options for the generator: host, port, credentials of the bench device */
    target: (s) => ({ host: '127.0.0.1', port: s.mqttPort, auth: s.fixture ? s.fixture.auth : null, serverPid: s.pid }),
    async restart(s) {
      await s.restart();
    },
    /**
     * Restarts a node column able to collect its garbage on request (--expose-gc and the
     * profiler preload; no other change); `fn` runs with `fullGc()`, which collects twice and
     * resolves to the process' memoryUsage(). Mosquitto is restarted as is; its `fullGc()` is null.
     * The usual flags are back from the next restart on.
     */
    async withFullGc(s, fn) {
      if (s.kind === 'mosquitto') {
        await s.restart();
        return fn(async () => null);
      }
      const saved = { nodeArgs: s.nodeArgs, extraEnv: s.extraEnv };
      const preload = ['-r', path.join(__dirname, 'lib', 'profiler.js')];
      const hasPreload = (s.nodeArgs || []).includes(preload[1]);
      s.nodeArgs = ['--expose-gc', ...(hasPreload ? [] : preload), ...(s.nodeArgs || [])];
      s.extraEnv = { ...s.extraEnv, BENCH_PROF_CTL: profCtl, BENCH_PROF_DIR: profDir };
      if (!fs.existsSync(profCtl)) fs.writeFileSync(profCtl, 'idle\n');
      try {
        await s.restart();
        let seq = 0;
        return await fn(async () => {
          const file = path.join(tmp, `mem-${s.name}-${s.pid}-${++seq}.json`);
          return JSON.parse(fs.readFileSync(await askProfiler(profCtl, s.pid, 'mem', file), 'utf8'));
        });
      } finally {
        s.nodeArgs = saved.nodeArgs;
        s.extraEnv = saved.extraEnv;
      }
    },
    async profile(s, scenario, tag, fn) {
      if (!profileSet.has(scenario) || s.kind === 'mosquitto') return fn();
      const profiling = startProfile(profCtl, profDir, s.pid, `${s.name}-${tag}-${rid}`, profileAlloc);
      await sleep(400);
      try {
        return await fn();
      } finally {
        log(`profile written: ${await profiling.stop()}`);
      }
    },
  };

  // ---- start every column, set up the service tenant -------------------------------------
  const started = [];
  for (const s of [...servers]) {
    try {
      log(`starting ${s.label}`);
      await s.start();
      started.push(s);
      if (s.kind === 'service') {
        const slug = `bench-${rid}`;
        const password = crypto.randomBytes(12).toString('base64url');
        await createTenant(ctx, s, slug);
        await addOpenDevice(s.rest, slug, 'bench', password);
        s.fixture = { slug, auth: { username: `${slug}:bench`, password } };
      }
      log(`${s.label}: mqtt ${s.mqttPort}${s.httpPort ? `, http ${s.httpPort}` : ''}, pid ${s.pid}`);
    } catch (err) {
      const msg = `${s.label} could not be started/set up: ${err.message.split('\n').slice(0, 8).join(' | ')}`;
      notes.push(msg);
      log(msg);
      await s.stop().catch(() => {});
      servers.splice(servers.indexOf(s), 1);
      columns.splice(columns.indexOf(s.name), 1);
      if (s.kind === 'aedes') throw new Error('bare aedes is the baseline and did not start');
    }
  }

  // ---- scenarios -------------------------------------------------------------------------
  const t0 = Date.now();
  let failed = 0;
  for (const sc of selected) {
    log(`=== ${sc.name}: ${sc.title} (load average ${os.loadavg().map((x) => x.toFixed(1)).join(' ')})`);
    ctx.raw(sc.name, 'loadAverageAtStart', os.loadavg());
    const ts = Date.now();
    try {
      await sc.run(ctx);
    } catch (err) {
      failed++;
      ctx.note(`scenario ${sc.name} failed: ${err.stack.split('\n').slice(0, 6).join(' | ')}`);
      // a failed scenario may leave a server in a bad state: start each one fresh
      for (const s of servers) await s.restart().catch((e) => ctx.note(`${s.name} restart failed: ${e.message}`));
    }
    log(`=== ${sc.name} done in ${((Date.now() - ts) / 1000).toFixed(0)} s`);
  }

  // ---- teardown, report ------------------------------------------------------------------
  for (const w of workers.splice(0)) await w.stop();
  for (const s of everyServer) await s.stop();
  if (pg) pg.stop();
  pg = null;

  for (const f of figures) evaluate(f);
  const out = {
    date: new Date().toISOString(),
    mode: p.quick ? 'quick' : 'full',
    args: process.argv.slice(2),
    machine,
    pinning: { serverCpus, genCpus, stormServerCpus: ctx.stormServerCpus, taskset: Boolean(taskset()) },
    columns: servers.map((s) => ({ name: s.name, label: s.label })),
    scenarios: selected.map((s) => s.name),
    seconds: (Date.now() - t0) / 1000,
    figures,
    misses: figures.flatMap((f) => Object.entries(f.verdicts || {}).filter(([, v]) => v === 'MISS').map(([c]) => `${f.id} (${c})`)),
    notes,
    raw,
  };
  const text = table(figures, columns);
  process.stdout.write(`\n${text}\n\n`);
  if (notes.length) process.stdout.write(`notes:\n${notes.map((n) => `  - ${n}`).join('\n')}\n`);
  process.stdout.write(`machine: ${machine.cpuModel}, ${machine.cores} cores, node ${machine.node}, aedes ${machine.aedes}` +
    `${machine.mosquitto ? `, mosquitto ${machine.mosquitto}` : ''}; load average at start ${machine.loadAverageAtStart.map((x) => x.toFixed(2)).join(' ')}` +
    `${machine.serviceStartFlags?.length ? `; service node flags (npm start): ${machine.serviceStartFlags.join(' ')}` : ''}\n`);
  const misses = out.misses;
  process.stdout.write(misses.length ? `targets missed: ${misses.join(', ')}\n` : 'targets: no miss among the figures measured\n');

  let file = o.out && o.out !== true ? path.resolve(o.out) : null;
  if (!file && !p.quick) file = path.join(__dirname, 'results', `${new Date().toISOString().slice(0, 10)}-${os.hostname()}.json`);
  if (file) {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    out.table = text.split('\n');
    fs.writeFileSync(file, JSON.stringify(out, null, 2) + '\n');
    process.stdout.write(`results: ${path.relative(process.cwd(), file)}\n`);
  }
  if (o['keep-tmp']) process.stdout.write(`temp dir kept: ${tmp}\n`);
  await cleanupAll();
  process.exitCode = failed ? 1 : 0;
}

if (require.main === module) {
  main().catch(async (err) => {
    process.stderr.write(`bench failed: ${err.stack}\n`);
    await cleanupAll();
    process.exit(2);
  });
}

module.exports = { SERVICE };
