'use strict';
// 7. Control plane: page GET /api/v1/tenants/{slug}/sessions?limit=100 through N live
// sessions (p50/p99 per page), and device creation per second (16 requests in flight).

const crypto = require('node:crypto');
const { services } = require('./common');
const { Hist, exactSummary } = require('../lib/hist');

async function sessionsOne(ctx, s) {
  const n = ctx.p.sessions;
  const { slug, auth } = s.fixture;
  const half = Math.ceil(n / 2);
  const tag = `${ctx.rid}${s.starts}`;
  const common = { ...ctx.target(s), group: 'sess', clientPattern: `sess-${tag}-{i}`, userPattern: auth.username, passPattern: auth.password, keepalive: 60, concurrency: 100 };
  const parts = await Promise.all([
    ctx.gen(0).call('holdOpen', { ...common, n: half, first: 0 }, 900000),
    ctx.gen(1).call('holdOpen', { ...common, n: n - half, first: half }, 900000),
  ]);
  const ok = parts[0].ok + parts[1].ok;
  if (ok < n) ctx.note(`control ${s.name}: only ${ok} of ${n} sessions connected ${JSON.stringify([parts[0].rcCounts, parts[0].errors])}`);
  await ctx.sleep(1000);
  const pages = [];
  let items = 0;
  let listed = 0;
  try {
    for (let pass = 0; pass < ctx.p.sessionPasses; pass++) {
      let cursor = null;
      listed = 0;
      for (let page = 0; page < Math.ceil(n / 100) + 50; page++) {
        const q = `limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        const r = await s.rest.request('GET', `/api/v1/tenants/${slug}/sessions?${q}`);
        if (r.status !== 200) throw new Error(`GET sessions -> ${r.status}: ${r.text.slice(0, 200)}`);
        pages.push(r.ms);
        listed += r.body.items.length;
        cursor = r.body.nextCursor;
        if (!cursor) break;
      }
      items = listed;
    }
  } finally {
    await ctx.gen(0).call('holdClose', { group: 'sess', graceful: false });
    await ctx.gen(1).call('holdClose', { group: 'sess', graceful: false });
  }
  // device creation
  const m = ctx.p.deviceCreations;
  const h = new Hist();
  const t0 = performance.now();
  const salt = crypto.randomBytes(3).toString('hex');
  await ctx.concurrently(m, 16, async (i) => {
    const r = await s.rest.request('POST', `/api/v1/tenants/${slug}/devices`, { name: `c${salt}-${i}`, password: `pw-${salt}-${i}` });
    if (r.status !== 201) throw new Error(`create device: ${r.status} ${r.text.slice(0, 200)}`);
    h.record(r.ms);
  });
  const devSeconds = (performance.now() - t0) / 1000;
  return {
    sessions: ok, listed: items, page: exactSummary(pages), pages: pages.length,
    devices: { n: m, seconds: devSeconds, perSec: m / devSeconds, latency: h.summary() },
  };
}

module.exports = {
  name: 'control',
  title: 'control plane: sessions paging at many live sessions, device creation rate',
  async run(ctx) {
    const res = {};
    for (const s of services(ctx)) {
      try {
        res[s.name] = await sessionsOne(ctx, s);
        const r = res[s.name];
        ctx.log(`${s.name}: listed ${r.listed} of ${r.sessions} sessions, page p50 ${r.page.p50.toFixed(1)} ms p99 ${r.page.p99.toFixed(1)} ms; ${r.devices.perSec.toFixed(1)} devices/s`);
      } catch (err) {
        ctx.note(`control ${s.name}: ${err.message.split('\n')[0]}`);
        res[s.name] = null;
      }
    }
    ctx.raw('control', 'results', res);
    if (Object.keys(res).length === 0) return;
    const pick = (f) => Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v ? f(v) : null]));
    const n = ctx.p.sessions;
    const sc = '7 control plane';
    ctx.figure({ id: 'control.sessions.p50', scenario: sc, label: `sessions page of 100 at ${n} live, p50`, unit: 'ms', better: 'lower', values: pick((v) => v.page.p50) });
    ctx.figure({
      id: 'control.sessions.p99', scenario: sc, label: `sessions page of 100 at ${n} live, p99`, unit: 'ms', better: 'lower',
      values: pick((v) => v.page.p99), target: { type: 'abs', op: '<', value: 100, text: '< 100 ms' },
    });
    ctx.figure({
      id: 'control.sessions.listed', scenario: sc, label: '  sessions listed by paging', unit: 'count', better: null, values: pick((v) => v.listed),
      target: { type: 'check', text: '= live sessions', pass: pick((v) => v.listed >= v.sessions) },
    });
    ctx.figure({ id: 'control.devices.rate', scenario: sc, label: 'device creation (16 in flight)', unit: '/s', better: 'higher', values: pick((v) => v.devices.perSec) });
    ctx.figure({ id: 'control.devices.p99', scenario: sc, label: '  device creation p99', unit: 'ms', better: 'lower', values: pick((v) => v.devices.latency.p99) });
  },
};
