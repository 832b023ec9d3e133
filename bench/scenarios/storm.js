'use strict';
// 4. Connect storm: N devices with distinct passwords connect (at most `stormConcurrency`
// CONNECTs in flight). Round 1 on a freshly started server (cold: every password is a bcrypt
// compare), round 2 after all disconnected (the verified-credential cache). Meanwhile 50
// already-connected clients publish to themselves at 1,000 msg/s in total: their latency
// during each round is compared with the quiet period before the storm, and the server's
// event-loop lag p99 is read from its /metrics (nodejs_eventloop_lag_p99_seconds).

const crypto = require('node:crypto');
const { countCpus } = require('../lib/proc');
const { Hist } = require('../lib/hist');
const { median } = require('../lib/report');
const { pairedRatios } = require('./common');

async function ensureDevices(ctx, s, n) {
  s.storm ??= { created: 0, secret: crypto.randomBytes(6).toString('hex') };
  if (s.storm.created >= n) return null;
  const { slug } = s.fixture;
  const hist = new Hist();
  const t0 = performance.now();
  const from = s.storm.created;
  await ctx.concurrently(n - from, 16, async (k) => {
    const i = from + k;
    const r = await s.rest.request('POST', `/api/v1/tenants/${slug}/devices`, { name: `sd${i}`, password: `pw-${s.storm.secret}-${i}` });
    if (r.status !== 201 && r.status !== 409) throw new Error(`create device sd${i}: ${r.status} ${r.text.slice(0, 200)}`);
    hist.record(r.ms);
  });
  s.storm.created = n;
  const seconds = (performance.now() - t0) / 1000;
  return { devices: n - from, seconds, perSec: (n - from) / seconds, latency: hist.summary() };
}

async function lagMs(s) {
  const m = await s.metrics();
  if (!m || !m.has('nodejs_eventloop_lag_p99_seconds')) return null;
  return m.get('nodejs_eventloop_lag_p99_seconds') * 1000;
}

/** The 50 connected clients publishing to themselves, started afresh for each window measured. */
function startProbe(ctx, s, tag) {
  return ctx.gen(1).call('rateStart', {
    ...ctx.target(s), name: `probe-${s.name}`, mode: 'self', n: 50, qos: 0, rate: 1000, payload: 64,
    topicPrefix: `probe/${tag}`, clientPrefix: `probe-${tag}`, keepSamples: true, warmupMs: 0,
  });
}

function stopProbe(ctx, s) {
  return ctx.gen(1).call('rateStop', { name: `probe-${s.name}` }).catch((e) => ({ error: e.message }));
}

function stormOptions(ctx, s) {
  const patterns = s.kind === 'service'
    ? { userPattern: `${s.fixture.slug}:sd{i}`, passPattern: `pw-${s.storm.secret}-{i}` }
    : {};
  const tag = `${ctx.rid}${s.starts}`;
  return { ...ctx.target(s), group: 'storm', n: ctx.p.stormDevices, concurrency: ctx.p.stormConcurrency, clientPattern: `st-${tag}-{i}`, keepalive: 60, timeoutMs: 600000, ...patterns };
}

/** One round: every device connects, then all disconnect; the probe's latency during it. */
async function stormRound(ctx, s, round, open) {
  const gen = ctx.gen(0);
  await lagMs(s);
  const r = await ctx.profile(s, 'storm', `storm-r${round}`, () => gen.call('holdOpen', open, 1200000));
  r.lagMs = await lagMs(s);
  r.probe = await ctx.gen(1).call('rateStats', { name: `probe-${s.name}`, from: r.start, to: r.end });
  ctx.log(`${s.name} storm round ${round}: ${r.ok} ok, ${r.failed} failed, ${r.connectsPerSec.toFixed(0)}/s, CONNACK p99 ${r.connack.p99?.toFixed(1)} ms, lag p99 ${r.lagMs?.toFixed(1) ?? '-'} ms, probe p99 ${r.probe.p99?.toFixed(2)} ms${r.serverCpuPerConnectUs ? `, ${r.serverCpuPerConnectUs.toFixed(0)} us cpu/connect` : ''}`);
  if (r.failed) ctx.note(`${s.name} storm round ${round}: ${r.failed} connects failed ${JSON.stringify({ rc: r.rcCounts, errors: r.errors })}`);
  r.close = await gen.call('holdClose', { group: 'storm' });
  await ctx.sleep(1000);
  return r;
}

/** Round 1 on a freshly started server (cold: nothing verified yet), after a quiet window of the probe. */
async function coldRound(ctx, s) {
  const created = s.kind === 'service' ? await ensureDevices(ctx, s, ctx.p.stormDevices) : null;
  if (created) ctx.log(`${s.name}: created ${created.devices} devices in ${created.seconds.toFixed(1)} s (${created.perSec.toFixed(1)}/s)`);
  await ctx.restart(s);
  const epoch = () => performance.timeOrigin + performance.now();
  const out = { created, cachedRounds: [] };
  await startProbe(ctx, s, `${ctx.rid}${s.starts}c`);
  try {
    await ctx.sleep(ctx.p.probeWarmMs); // past the JIT warm-up and the startup garbage of a fresh process
    await lagMs(s); // resets the lag histogram
    const q0 = epoch();
    await ctx.sleep(ctx.p.probeQuietMs);
    const q1 = epoch();
    out.quietLagMs = await lagMs(s);
    out.quiet = await ctx.gen(1).call('rateStats', { name: `probe-${s.name}`, from: q0, to: q1 });
    out.round1 = await stormRound(ctx, s, 1, stormOptions(ctx, s));
  } finally {
    out.probeTotals = await stopProbe(ctx, s);
  }
  return out;
}

/** A cached round (the verified-credential cache), with a probe of its own. */
async function cachedRound(ctx, s, round, out) {
  await startProbe(ctx, s, `${ctx.rid}${s.starts}r${round}`);
  try {
    await ctx.sleep(300);
    out.cachedRounds.push(await stormRound(ctx, s, round, stormOptions(ctx, s)));
  } finally {
    await stopProbe(ctx, s);
  }
}

module.exports = {
  name: 'storm',
  title: 'connect storm: devices with distinct passwords, round 1 cold, round 2 after disconnecting all',
  async run(ctx) {
    let ceiling = null;
    if (ctx.servers.some((s) => s.kind === 'service')) {
      // one compare per cpu, as the service runs bcrypt (src/common/bcrypt-pool.ts)
      const cpus = countCpus(ctx.stormServerCpus);
      const w = ctx.serverCpuWorker(ctx.stormServerCpus, { UV_THREADPOOL_SIZE: String(cpus) });
      try {
        ceiling = await w.call('bcryptRate', { cost: Number(process.env.BCRYPT_COST || 10), concurrency: cpus, ms: ctx.p.quick ? 1500 : 5000 });
        ceiling.cpus = ctx.stormServerCpus;
      } finally {
        await w.stop();
      }
      ctx.log(`bcrypt ceiling on cpus ${ctx.stormServerCpus}: ${ceiling.comparesPerSec.toFixed(1)} compares/s`);
      ctx.raw('storm', 'bcryptCeiling', ceiling);
    }
    const res = {};
    const pinned = new Map(ctx.servers.map((s) => [s, s.cpus]));
    const failed = (s, err) => {
      ctx.note(`storm ${s.name}: ${err.message.split('\n')[0]}`);
      res[s.name] = null;
    };
    try {
      // "bcrypt spread over all cores": during the storm the servers may use every cpu
      // (--storm-server-cpus), the generators stay where they are
      for (const s of ctx.servers) s.cpus = ctx.stormServerCpus;
      for (const s of ctx.servers) res[s.name] = await coldRound(ctx, s).catch((err) => failed(s, err));
      // Cached rounds take turns across the columns, in a rotating order: this machine's speed
      // drifts by 2x within minutes, and a column's rounds run back to back measured the drift
      // (the same build read 0.59x and 1.46x of bare aedes in two runs a few minutes apart).
      const live = ctx.servers.filter((s) => res[s.name]);
      for (let round = 2; round <= 1 + ctx.p.stormCachedRounds; round++) {
        const k = round % live.length;
        for (const s of [...live.slice(k), ...live.slice(0, k)]) {
          if (res[s.name]) await cachedRound(ctx, s, round, res[s.name]).catch((err) => failed(s, err));
        }
      }
      for (const v of Object.values(res)) {
        if (v) v.round2 = [...v.cachedRounds].sort((a, b) => a.connectsPerSec - b.connectsPerSec)[Math.floor((v.cachedRounds.length - 1) / 2)];
      }
    } finally {
      for (const s of ctx.servers) {
        s.cpus = pinned.get(s);
        await ctx.restart(s).catch((e) => ctx.note(`storm ${s.name}: restart failed: ${e.message}`));
      }
    }
    ctx.raw('storm', 'results', res);
    const pick = (f) => Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v ? f(v) : null]));
    const n = ctx.p.stormDevices;
    const sc = '4 connect storm';
    const c = ceiling ? ceiling.comparesPerSec : null;
    const r1Pass = {};
    const probePass = {};
    for (const [k, v] of Object.entries(res)) {
      if (!v || !ctx.servers.find((s) => s.name === k && s.kind === 'service')) continue;
      if (c) r1Pass[k] = v.round1.connectsPerSec >= 0.8 * c && v.round1.failed === 0;
      // the issue's condition is about round 1 (bcrypt off the event loop); round 2 is shown
      probePass[k] = v.round1.probe.n > 0 && v.round1.probe.p99 <= 2 * Math.max(v.quiet.p99, 1);
    }
    ctx.figure({
      id: 'storm.r1.rate', scenario: sc, label: `round 1 (cold) connects, ${n} devices`, unit: '/s', better: 'higher',
      values: pick((v) => v.round1.connectsPerSec),
      target: c ? { type: 'check', text: `>= 0.8x bcrypt ceiling ${c.toFixed(0)}/s`, pass: r1Pass } : undefined,
    });
    ctx.figure({ id: 'storm.r1.connack.p99', scenario: sc, label: '  round 1 CONNACK p99', unit: 'ms', better: 'lower', values: pick((v) => v.round1.connack.p99) });
    ctx.figure({
      id: 'storm.r1.lag.p99', scenario: sc, label: '  round 1 server event-loop lag p99', unit: 'ms', better: 'lower', noRatio: true,
      values: pick((v) => v.round1.lagMs), target: { type: 'abs', op: '<', value: 20, text: '< 20 ms' },
    });
    ctx.figure({ id: 'storm.quiet.probe.p99', scenario: sc, label: 'connected clients p99, quiet', unit: 'ms', better: 'lower', values: pick((v) => v.quiet.p99) });
    ctx.figure({
      id: 'storm.r1.probe.p99', scenario: sc, label: '  during round 1', unit: 'ms', better: 'lower',
      values: pick((v) => v.round1.probe.p99), target: { type: 'check', text: '<= 2x quiet', pass: probePass },
    });
    ctx.figure({ id: 'storm.r2.probe.p99', scenario: sc, label: '  during round 2', unit: 'ms', better: 'lower', values: pick((v) => v.round2.probe.p99) });
    ctx.figure({
      id: 'storm.r2.rate', scenario: sc, label: `round 2 (cached) connects, median of ${ctx.p.stormCachedRounds}`, unit: '/s', better: 'higher',
      values: pick((v) => v.round2.connectsPerSec),
      // each cached round of a column against bare aedes' round of the same cycle
      pairedRatios: pairedRatios(pick((v) => v.cachedRounds), (r) => r.connectsPerSec),
      target: { type: 'ratio', op: '>=', value: 0.8 },
    });
    ctx.figure({
      id: 'storm.r2.first.rate', scenario: sc, label: '  first cached round (JIT still warming)', unit: '/s', better: 'higher',
      values: pick((v) => v.cachedRounds[0]?.connectsPerSec ?? null),
    });
    ctx.figure({ id: 'storm.r2.connack.p99', scenario: sc, label: '  round 2 CONNACK p99', unit: 'ms', better: 'lower', values: pick((v) => v.round2.connack.p99) });
    ctx.figure({
      id: 'storm.r2.cpuperconnect', scenario: sc, label: '  round 2 server cpu per connect, median', unit: 'us', better: 'lower',
      values: pick((v) => median(v.cachedRounds.map((r) => r.serverCpuPerConnectUs))),
    });
    ctx.figure({ id: 'storm.r2.lag.p99', scenario: sc, label: '  round 2 server event-loop lag p99', unit: 'ms', better: 'lower', noRatio: true, values: pick((v) => v.round2.lagMs) });
    ctx.figure({
      id: 'storm.failed', scenario: sc, label: 'failed connects (all rounds)', unit: 'count', better: 'lower',
      values: pick((v) => v.round1.failed + v.cachedRounds.reduce((t, r) => t + r.failed, 0)), target: { type: 'abs', op: '==', value: 0, text: '0' },
    });
    if (Object.values(res).every((v) => !v || v.round1.lagMs === null)) ctx.note('storm: no server exposes nodejs_eventloop_lag_p99_seconds: lag column empty');
  },
};
