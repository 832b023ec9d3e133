#!/usr/bin/env node
'use strict';
// What costs connected clients their latency during a cold connect storm? The storm scenario
// mixes three things: cold CONNECTs (our work on the event loop), bcrypt busy on every core, and
// the bench's generators. This takes them apart. It starts one server the way the storm does
// (pinned to every core, generators on the last), keeps the storm's probe running (50 clients
// publishing to themselves, 1,000 msg/s, QoS 0) and measures it in windows, each under one load:
//   quiet                 the probe alone
//   connect               cold CONNECTs of distinct devices at --rate/s, each held open
//   burn-<p>              bcrypt in another process, one compare per core on as many pool threads
//                         (as the service runs it), on the server's cores, at priority <p>: nice0,
//                         nice10, nice19, idle (SCHED_IDLE, via chrt)
//   connect+burn-<p>      both (bare aedes' stand-in for the service's own bcrypt)
//   create                REST device creation, 16 requests in flight (service only)
// and prints the probe's p50/p99/p99.9/max per window, with the server main thread's CPU time and
// the time it waited for a core (/proc/<pid>/task/<pid>/schedstat).
//   node bench/storm-probe.js [--server=aedes|service|service-pg] [--windows=quiet,connect,...]
//                             [--seconds=15] [--rate=28] [--devices=N] [--service-env=K=V,...]
//                             [--node-args="A B"]  extra node flags for the server
//                             [--profile]   CPU-profile the server in each window
//                                           (bench/results/profiles/probe-<server>-<i>-<window>.cpuprofile)
// The service's devices are created first (at its BCRYPT_COST, so --service-env=BCRYPT_COST=4
// makes them cheap and its connects as well); --devices defaults to what the connect windows need.
// A single window is noisy: repeat it (--windows=connect,connect,connect).

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { setTimeout: sleep } = require('node:timers/promises');
const { arg } = require('./lib/cli');
const { Worker, spawnPinned, startProfile } = require('./lib/proc');
const { AedesServer, ServiceServer, Postgres, ensureBuild } = require('./lib/servers');
const { BENCH_LIMITS, addOpenDevice } = require('./lib/fixture');

const epoch = () => performance.timeOrigin + performance.now();

/** --burner=<priority>: the bcrypt load itself (this file, run again in its own process) */
async function burner(priority) {
  const bcrypt = require('bcrypt');
  const before = new Set(fs.readdirSync('/proc/self/task'));
  const hash = await bcrypt.hash('storm-probe', 10);
  // libuv starts its pool on the first job: the threads that appeared are the pool
  for (const tid of fs.readdirSync('/proc/self/task').filter((t) => !before.has(t))) {
    if (priority === 'idle') execFileSync('chrt', ['--idle', '-p', '0', tid]);
    else os.setPriority(Number(tid), Number(priority.replace(/^nice/, '')));
  }
  let n = 0;
  const t0 = performance.now();
  process.on('SIGTERM', () => {
    process.stdout.write(`${(n / ((performance.now() - t0) / 1000)).toFixed(1)}\n`);
    process.exit(0);
  });
  await Promise.all(Array.from({ length: os.availableParallelism() }, async () => {
    for (;;) {
      await bcrypt.compare('storm-probe', hash);
      n++;
    }
  }));
}

function startBurner(priority, cpus) {
  if (!/^(nice-?\d+|idle)$/.test(priority)) throw new Error(`unknown burn priority ${priority}`);
  const child = spawnPinned(process.execPath, [__filename, `--burner=${priority}`], {
    cpus, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, UV_THREADPOOL_SIZE: String(os.availableParallelism()) },
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.on('exit', r));
  return {
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return Number(out.trim()) || null;
    },
  };
}

function schedstat(pid) {
  const [run, wait, slices] = fs.readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return { run, wait, slices };
}

async function main() {
  if (arg('burner')) return burner(arg('burner'));
  const kind = arg('server', 'service');
  const windows = arg('windows', 'quiet,connect,burn-nice10,burn-nice19,connect+burn-nice19,quiet').split(',');
  const seconds = Number(arg('seconds', 15));
  const rate = Number(arg('rate', 28));
  const cpuCount = os.availableParallelism();
  const serverCpus = `0-${cpuCount - 1}`;
  const genCpus = String(cpuCount - 1);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'storm-probe-'));
  const cleanups = [() => fs.rmSync(tmp, { recursive: true, force: true })];
  const log = (m) => process.stderr.write(`${m}\n`);
  try {
    let server;
    if (kind === 'aedes') server = new AedesServer({ cpus: serverCpus, tmp });
    else if (kind === 'service' || kind === 'service-pg') {
      const b = ensureBuild(log);
      if (!b.ok) throw new Error(b.reason);
      let databaseUrl;
      if (kind === 'service-pg') {
        const pg = new Postgres({ tmp, cpus: genCpus });
        databaseUrl = await pg.start();
        cleanups.unshift(() => pg.stop());
      }
      server = new ServiceServer({ db: kind === 'service-pg' ? 'postgres' : 'pglite', databaseUrl, cpus: serverCpus, tmp });
      server.extraEnv = Object.fromEntries(arg('service-env', '').split(',').filter(Boolean).map((kv) => kv.split('=')));
    } else throw new Error(`--server=aedes|service|service-pg, not ${kind}`);
    const profCtl = path.join(tmp, 'prof-ctl');
    const profDir = path.join(__dirname, 'results', 'profiles');
    const profiling = process.argv.includes('--profile');
    server.nodeArgs = arg('node-args', '').split(' ').filter(Boolean);
    if (profiling) {
      server.nodeArgs.push('-r', path.join(__dirname, 'lib', 'profiler.js'));
      server.extraEnv = { ...server.extraEnv, BENCH_PROF_CTL: profCtl, BENCH_PROF_DIR: profDir };
    }
    await server.start();
    cleanups.unshift(() => server.stop());
    const gens = [new Worker({ cpus: genCpus, label: 'probe' }), new Worker({ cpus: genCpus, label: 'connects' })];
    cleanups.unshift(async () => {
      for (const g of gens) await g.stop();
    });

    const target = { host: '127.0.0.1', port: server.mqttPort, serverPid: server.pid };
    let slug = null;
    if (kind !== 'aedes') {
      slug = `probe-${Date.now()}`;
      await server.rest.must('POST', '/api/v1/tenants', { slug, limits: BENCH_LIMITS });
      await addOpenDevice(server.rest, slug, 'probe', 'probe-password');
      const needed = windows.filter((w) => w.startsWith('connect')).length * Math.ceil(rate * (seconds + 2));
      const devices = Number(arg('devices', needed));
      const t0 = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: 16 }, async () => {
        while (next < devices) {
          const i = next++;
          await server.rest.must('POST', `/api/v1/tenants/${slug}/devices`, { name: `sd${i}`, password: `storm-probe-${i}` });
        }
      }));
      if (devices) log(`${devices} devices created in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    const auth = slug ? { username: `${slug}:probe`, password: 'probe-password' } : null;
    await gens[0].call('rateStart', {
      ...target, auth, name: 'probe', mode: 'self', n: 50, qos: 0, rate: 1000, payload: 64,
      topicPrefix: 'probe/storm', clientPrefix: 'probe-storm', keepSamples: true, warmupMs: 0,
    });
    await sleep(5000); // the probe's own connects and JIT warm-up

    let nextDevice = 0;
    let nextCreate = 0;
    log(`${kind}, windows of ${seconds} s, connects at ${rate}/s, server on cpus ${serverCpus}, generators on ${genCpus}`);
    for (const [wi, w] of windows.entries()) {
      const parts = w.split('+');
      const unknown = parts.filter((p) => !['quiet', 'connect', 'create'].includes(p) && !p.startsWith('burn-'));
      if (unknown.length) throw new Error(`unknown window ${w}`);
      const burn = parts.find((p) => p.startsWith('burn-'));
      const b = burn ? startBurner(burn.slice('burn-'.length), serverCpus) : null;
      if (b) await sleep(1500); // its hash, then its pool busy
      let connected = 0;
      let failed = 0;
      const pending = [];
      const connector = parts.includes('connect')
        ? setInterval(() => {
          const i = nextDevice++;
          pending.push(gens[1].call('holdOpen', {
            ...target, group: 'storm', n: 1, first: i, concurrency: 1, keepalive: 60, timeoutMs: 60000, clientPattern: 'st-{i}',
            ...(slug ? { userPattern: `${slug}:sd{i}`, passPattern: 'storm-probe-{i}' } : {}),
          }).then((r) => {
            connected += r.ok;
            failed += r.failed;
          }, () => failed++));
        }, 1000 / rate)
        : null;
      let creating = parts.includes('create');
      let created = 0;
      if (creating && !slug) throw new Error('create: service only');
      const creators = creating
        ? Array.from({ length: 16 }, async () => {
          while (creating) {
            const i = nextCreate++;
            const r = await server.rest.request('POST', `/api/v1/tenants/${slug}/devices`, { name: `cr${i}`, password: `storm-probe-${i}` });
            if (r.status === 201) created++;
          }
        })
        : [];
      const profTag = `probe-${kind}-${wi}-${w.replace(/\+/g, '_')}`;
      const profile = profiling ? startProfile(profCtl, profDir, server.pid, profTag) : null;
      const s0 = schedstat(server.pid);
      const from = epoch();
      await sleep(seconds * 1000);
      const to = epoch();
      const s1 = schedstat(server.pid);
      if (connector) clearInterval(connector);
      const profileFile = profile ? await profile.stop() : null;
      creating = false;
      const createdBefore = created;
      await Promise.all([...pending, ...creators]);
      const compares = b ? await b.stop() : null;
      const st = await gens[0].call('rateStats', { name: 'probe', from, to });
      const ms = (ns) => (ns / 1e6).toFixed(0);
      const extra = [
        connector ? `${connected} connected${failed ? `, ${failed} failed` : ''}` : '',
        creators.length ? `${createdBefore} created` : '',
        compares ? `burner ${compares.toFixed(1)} compares/s` : '',
      ].filter(Boolean).join(', ');
      process.stdout.write(`${w.padEnd(22)} p50 ${st.p50.toFixed(2)}  p99 ${st.p99.toFixed(2)}  p99.9 ${st.p999.toFixed(2)}  max ${st.max.toFixed(1)} ms (n ${st.n})`
        + `  | event loop ${ms(s1.run - s0.run)} ms cpu, ${ms(s1.wait - s0.wait)} ms waiting for a core${extra ? `  | ${extra}` : ''}\n`);
      if (profileFile) log(`profile: ${profileFile}`);
    }
    await gens[0].call('rateStop', { name: 'probe' });
  } finally {
    for (const c of cleanups) await c();
  }
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
