'use strict';
// 4. Connect storm: N devices with distinct passwords connect (at most `stormConcurrency`
// CONNECTs in flight). Round 1 on a freshly started server (cold: every password is a bcrypt
// compare), round 2 after all disconnected (the verified-credential cache). Meanwhile 50
// already-connected clients publish to themselves at 1,000 msg/s in total: their latency
// during each round is compared with the quiet period before the storm, and the server's
// event-loop lag p99 is read from its /metrics (nodejs_eventloop_lag_p99_seconds).

const crypto = require('node:crypto');
const { Hist } = require('../lib/hist');
const { median } = require('../lib/report');

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

async function stormOne(ctx, s) {
  const n = ctx.p.stormDevices;
  const created = s.kind === 'service' ? await ensureDevices(ctx, s, n) : null;
  if (created) ctx.log(`${s.name}: created ${created.devices} devices in ${created.seconds.toFixed(1)} s (${created.perSec.toFixed(1)}/s)`);
  await ctx.restart(s); // cold: nothing verified yet
  const gen = ctx.gen(0);
  const probeGen = ctx.gen(1);
  const patterns = s.kind === 'service'
    ? { userPattern: `${s.fixture.slug}:sd{i}`, passPattern: `pw-${s.storm.secret}-{i}` }
    : {};
  const tag = `${ctx.rid}${s.starts}`;
  await probeGen.call('rateStart', {
    ...ctx.target(s), name: 'probe', mode: 'self', n: 50, qos: 0, rate: 1000, payload: 64,
    topicPrefix: `probe/${tag}`, clientPrefix: `probe-${tag}`, keepSamples: true, warmupMs: 0,
  });
  const epoch = () => performance.timeOrigin + performance.now();
  const out = { created };
  try {
    await ctx.sleep(ctx.p.quick ? 1500 : 3000); // past the JIT warm-up of a fresh process
    await lagMs(s); // resets the lag histogram
    const q0 = epoch();
    await ctx.sleep(ctx.p.probeQuietMs);
    const q1 = epoch();
    out.quietLagMs = await lagMs(s);
    const open = { ...ctx.target(s), group: 'storm', n, concurrency: ctx.p.stormConcurrency, clientPattern: `st-${tag}-{i}`, keepalive: 60, timeoutMs: 600000, ...patterns };
    // a cached round lasts about a second: it is repeated and the median round reported
    const cached = [];
    for (let round = 1; round <= 1 + ctx.p.stormCachedRounds; round++) {
      await lagMs(s);
      const r = await ctx.profile(s, 'storm', `storm-r${round}`, () => gen.call('holdOpen', open, 1200000));
      r.lagMs = await lagMs(s);
      r.probe = await probeGen.call('rateStats', { name: 'probe', from: r.start, to: r.end });
      if (round === 1) out.round1 = r;
      else cached.push(r);
      ctx.log(`${s.name} storm round ${round}: ${r.ok} ok, ${r.failed} failed, ${r.connectsPerSec.toFixed(0)}/s, CONNACK p99 ${r.connack.p99?.toFixed(1)} ms, lag p99 ${r.lagMs?.toFixed(1) ?? '-'} ms, probe p99 ${r.probe.p99?.toFixed(2)} ms${r.serverCpuPerConnectUs ? `, ${r.serverCpuPerConnectUs.toFixed(0)} us cpu/connect` : ''}`);
      if (r.failed) ctx.note(`${s.name} storm round ${round}: ${r.failed} connects failed ${JSON.stringify({ rc: r.rcCounts, errors: r.errors })}`);
      out[`close${round}`] = await gen.call('holdClose', { group: 'storm' });
      await ctx.sleep(1000);
    }
    out.cachedRounds = cached;
    out.round2 = [...cached].sort((a, b) => a.connectsPerSec - b.connectsPerSec)[Math.floor((cached.length - 1) / 2)];
    out.quiet = await probeGen.call('rateStats', { name: 'probe', from: q0, to: q1 });
  } finally {
    out.probeTotals = await probeGen.call('rateStop', { name: 'probe' }).catch((e) => ({ error: e.message }));
  }
  return out;
}

module.exports = {
  name: 'storm',
  title: 'connect storm: devices with distinct passwords, round 1 cold, round 2 after disconnecting all',
  async run(ctx) {
    let ceiling = null;
    if (ctx.servers.some((s) => s.kind === 'service')) {
      const w = ctx.serverCpuWorker(ctx.stormServerCpus);
      try {
        ceiling = await w.call('bcryptRate', { cost: Number(process.env.BCRYPT_COST || 10), concurrency: 4, ms: ctx.p.quick ? 1500 : 5000 });
        ceiling.cpus = ctx.stormServerCpus;
      } finally {
        await w.stop();
      }
      ctx.log(`bcrypt ceiling on cpus ${ctx.stormServerCpus}: ${ceiling.comparesPerSec.toFixed(1)} compares/s`);
      ctx.raw('storm', 'bcryptCeiling', ceiling);
    }
    const res = {};
    for (const s of ctx.servers) {
      // "bcrypt spread over all cores": during the storm the servers may use every cpu
      // (--storm-server-cpus), the generators stay where they are
      const pinned = s.cpus;
      s.cpus = ctx.stormServerCpus;
      try {
        res[s.name] = await stormOne(ctx, s);
      } catch (err) {
        ctx.note(`storm ${s.name}: ${err.message.split('\n')[0]}`);
        res[s.name] = null;
      } finally {
        s.cpus = pinned;
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
      values: pick((v) => v.round2.connectsPerSec), target: { type: 'ratio', op: '>=', value: 0.8 },
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
