'use strict';
// 5. Idle connections: N connected clients with keepalive 60 s (PINGREQ every 30 s), spread
// over two generator processes (20,000 open files per process here). Resident memory of the
// server process from /proc/<pid>/status before and after; per connection = delta / N.
//
// Both readings follow a full GC (node columns restarted with --expose-gc; mosquitto as is).
// Without it the delta measured when V8 last collected: a major GC of the service's startup
// garbage during the connects moved its RSS by 250 MiB (13 KiB per connection), and bare
// aedes and the service read 11-13 and 13.5-16.5 KiB in four runs of the same code.

async function rssSettled(s, samples = 3, gapMs = 700) {
  const xs = [];
  for (let i = 0; i < samples; i++) {
    const st = s.status();
    if (st && st.rss) xs.push(st.rss);
    await new Promise((r) => setTimeout(r, gapMs));
  }
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)];
}

function idleOne(ctx, s) {
  return ctx.withFullGc(s, async (fullGc) => {
    const n = ctx.p.idleConnections;
    // the service's first connect of the bench device pays bcrypt: do it before the baseline
    if (s.kind === 'service') {
      await ctx.gen(0).call('holdOpen', { ...ctx.target(s), group: 'idle-warm', n: 1, clientPattern: `iw-${ctx.rid}`, userPattern: s.fixture.auth.username, passPattern: s.fixture.auth.password, keepalive: 60 });
      await ctx.gen(0).call('holdClose', { group: 'idle-warm' });
    }
    await ctx.sleep(1500);
    const memBefore = await fullGc();
    const before = await rssSettled(s);
    const half = Math.ceil(n / 2);
    const auth = s.kind === 'service' ? { userPattern: s.fixture.auth.username, passPattern: s.fixture.auth.password } : {};
    const tag = `${ctx.rid}${s.starts}`;
    const t0 = performance.now();
    const parts = await Promise.all([
      ctx.gen(0).call('holdOpen', { ...ctx.target(s), group: 'idle', n: half, first: 0, clientPattern: `idle-${tag}-{i}`, keepalive: 60, concurrency: 100, ...auth }, 900000),
      ctx.gen(1).call('holdOpen', { ...ctx.target(s), group: 'idle', n: n - half, first: half, clientPattern: `idle-${tag}-{i}`, keepalive: 60, concurrency: 100, ...auth }, 900000),
    ]);
    const seconds = (performance.now() - t0) / 1000;
    await ctx.sleep(ctx.p.quick ? 1000 : 3000);
    // as the process stands (garbage of the connects included): the < 1 GiB figure
    const rssHeld = await rssSettled(s);
    const memAfter = await fullGc();
    const after = await rssSettled(s);
    const held = (await ctx.gen(0).call('holdInfo', { group: 'idle' })).held + (await ctx.gen(1).call('holdInfo', { group: 'idle' })).held;
    const ok = parts[0].ok + parts[1].ok;
    const failed = parts[0].failed + parts[1].failed;
    if (failed) ctx.note(`idle ${s.name}: ${failed} of ${n} connects failed ${JSON.stringify([parts[0].rcCounts, parts[0].errors, parts[1].rcCounts, parts[1].errors])}`);
    await ctx.gen(0).call('holdClose', { group: 'idle', graceful: false });
    await ctx.gen(1).call('holdClose', { group: 'idle', graceful: false });
    return {
      n, ok, failed, held, seconds, connectsPerSec: ok / seconds, rssBefore: before, rssAfter: after, rssHeld,
      perConnection: ok ? (after - before) / ok : null,
      heapPerConnection: ok && memBefore && memAfter ? (memAfter.heapUsed - memBefore.heapUsed) / ok : null,
      memBefore, memAfter,
      threads: s.status()?.threads ?? null,
    };
  });
}

module.exports = {
  name: 'idle',
  title: 'idle connections with keepalive: resident memory per connection',
  async run(ctx) {
    const res = {};
    for (const s of ctx.servers) {
      try {
        res[s.name] = await idleOne(ctx, s);
        const r = res[s.name];
        const heap = r.heapPerConnection === null ? '' : `, V8 heap ${(r.heapPerConnection / 1024).toFixed(1)} KiB`;
        ctx.log(`${s.name}: ${r.ok}/${r.n} idle connections, RSS after full GC ${(r.rssBefore / 2 ** 20).toFixed(0)} -> ${(r.rssAfter / 2 ** 20).toFixed(0)} MiB (${(r.rssHeld / 2 ** 20).toFixed(0)} before it), ${(r.perConnection / 1024).toFixed(1)} KiB each${heap}`);
      } catch (err) {
        ctx.note(`idle ${s.name}: ${err.message.split('\n')[0]}`);
        res[s.name] = null;
      }
      await ctx.restart(s).catch(() => {}); // give the memory back before the next scenario
    }
    ctx.raw('idle', 'results', res);
    const pick = (f) => Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v ? f(v) : null]));
    const n = ctx.p.idleConnections;
    const sc = '5 idle connections';
    ctx.figure({
      id: 'idle.perconn', scenario: sc, label: `RSS per idle connection (${n}), after full GC`, unit: 'B', better: 'lower',
      values: pick((v) => v.perConnection), target: { type: 'ratio', op: '<=', value: 1.3 },
    });
    ctx.figure({
      id: 'idle.heap', scenario: sc, label: '  of which V8 heap (live objects)', unit: 'B', better: 'lower',
      values: pick((v) => v.heapPerConnection),
    });
    const full = n >= 19000;
    ctx.figure({
      id: 'idle.rss', scenario: sc, label: `process RSS with ${n} connected`, unit: 'B', better: 'lower',
      values: pick((v) => v.rssHeld),
      target: full ? { type: 'abs', op: '<', value: 2 ** 30, text: '< 1 GiB' } : undefined,
    });
    ctx.figure({ id: 'idle.connected', scenario: sc, label: '  connected and held', unit: 'count', better: 'higher', values: pick((v) => v.held) });
    ctx.figure({ id: 'idle.rate', scenario: sc, label: '  connects/s (200 in flight, cached credential)', unit: '/s', better: 'higher', values: pick((v) => v.connectsPerSec) });
  },
};
