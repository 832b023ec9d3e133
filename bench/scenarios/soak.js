'use strict';
// 8. Soak (full mode only, --soak-seconds, default 600 per server): QoS 1 fan-in at half of
// bare aedes' measured saturation, the same rate for every column (a column offered half of
// its own saturation would be compared at another load), with clients churning (connect,
// subscribe, publish, leave after 3 s, half of them without DISCONNECT). RSS (/proc) and heap
// (/metrics) sampled throughout: least-squares slope after the first 20% of the run, p99 drift.

const { slope, median } = require('../lib/report');
const fanin = require('./fanin');

/** --soak-rate, else half of bare aedes' QoS 1 fan-in saturation (from the fan-in scenario, or measured now) */
async function offeredRate(ctx) {
  if (ctx.p.soakRate) return ctx.p.soakRate;
  let sat = ctx.saturation?.aedes?.qos1;
  if (!sat) {
    const aedes = ctx.servers.find((x) => x.name === 'aedes');
    await ctx.restart(aedes);
    sat = (await fanin.measure(ctx, aedes, 1, `${ctx.rid}cal${aedes.starts}`, { warmupMs: 1000, durationMs: 3000 })).delivered;
  }
  return Math.max(100, Math.round(sat / 2));
}

// RSS and heap-used as they stand include garbage no mark-compact has collected yet (the
// service runs with --no-memory-reducer), so their slopes cannot tell a leak from a lazy GC: in a
// 10-minute window the old generation often grows the whole time and is collected after it (the
// fitted RSS slope of one build read -0.96 and +3.0 MiB/min in two runs). RSS and heap-used read
// right after a forced full GC at the start of the steady window and at its end can, as the idle
// scenario reads memory per connection: the server runs with --expose-gc here (ctx.withFullGc).
// "No upward RSS trend" is judged on those two readings; the fitted slopes are shown beside them.
function soakOne(ctx, s, rate) {
  return ctx.withFullGc(s, (fullGc) => soakRun(ctx, s, rate, fullGc));
}

async function soakRun(ctx, s, rate, fullGc) {
  const seconds = ctx.p.soakSeconds;
  const tag = `${ctx.rid}${s.starts}`;
  await ctx.gen(0).call('rateStart', {
    ...ctx.target(s), name: 'soak', mode: 'wildcard', n: 50, qos: 1, rate, payload: 64,
    topicPrefix: `soak/${tag}`, clientPrefix: `soak-${tag}`, warmupMs: 0,
    // 10 ms ticks: a few messages per write, like the fan-in that measured the saturation
    // (one write per message would cost the broker a read per message and saturate it early)
    tickMs: 10,
  });
  await ctx.gen(1).call('churnStart', {
    ...ctx.target(s), rate: ctx.p.quick ? 10 : 20, lifeMs: 3000, topicPrefix: `churn/${tag}`, clientPrefix: `churn-${tag}`,
  });
  const samples = [];
  const t0 = performance.now();
  const until = t0 + seconds * 1000;
  let liveStart = null;
  let liveEnd = null;
  // every reading after a forced full GC: start and end of the steady window, and one each
  // --soak-gc-every seconds between them (a series tells a plateau from steady growth)
  const afterGcSeries = [];
  const readAfterGc = async () => {
    const r = { t: (performance.now() - t0) / 1000, mem: await fullGc() };
    afterGcSeries.push({ t: r.t, ...r.mem });
    return r;
  };
  const gcEveryMs = ctx.p.soakGcEverySeconds * 1000;
  let nextGc = Infinity;
  try {
    while (performance.now() < until) {
      if (liveStart === null && performance.now() - t0 >= seconds * 200) {
        liveStart = await readAfterGc();
        if (gcEveryMs > 0) nextGc = performance.now() + gcEveryMs;
      }
      if (performance.now() >= nextGc && until - performance.now() > gcEveryMs / 2) {
        await readAfterGc();
        nextGc += gcEveryMs;
      }
      await ctx.sleep(Math.min(ctx.p.soakSampleMs, Math.max(0, until - performance.now())));
      const iv = await ctx.gen(0).call('rateInterval', { name: 'soak' });
      const st = s.status();
      const m = await s.metrics();
      const heap = m && m.has('nodejs_heap_size_used_bytes') ? m.get('nodejs_heap_size_used_bytes') : null;
      samples.push({
        t: (performance.now() - t0) / 1000, rss: st ? st.rss : null, heap, p99: iv.latency.p99 ?? null,
        rate: iv.received / iv.seconds, errors: iv.errors, throttled: iv.throttled,
      });
    }
    liveEnd = await readAfterGc();
  } finally {
    var churn = await ctx.gen(1).call('churnStop', {}).catch((e) => ({ error: e.message }));
    var totals = await ctx.gen(0).call('rateStop', { name: 'soak' }).catch((e) => ({ error: e.message }));
  }
  const steady = samples.filter((x) => x.t >= seconds * 0.2);
  const perMin = (k) => {
    const pts = steady.filter((x) => typeof x[k] === 'number').map((x) => [x.t / 60, x[k]]);
    return slope(pts);
  };
  const third = Math.max(1, Math.floor(samples.length / 3));
  const p99First = median(samples.slice(0, third).map((x) => x.p99));
  const p99Last = median(samples.slice(-third).map((x) => x.p99));
  const rssStart = steady.length ? steady[0].rss : samples[0]?.rss;
  const rssSlope = perMin('rss');
  const windowMin = (seconds * 0.8) / 60;
  const fittedRssUnder10Pct = rssSlope !== null && rssSlope * windowMin < 0.1 * rssStart;
  const afterGc = Boolean(liveStart?.mem && liveEnd?.mem && liveEnd.t > liveStart.t);
  const gcSeries = afterGcSeries.filter((x) => typeof x.rss === 'number');
  const fittedAfterGc = (k) => (gcSeries.length >= 3 ? slope(gcSeries.map((x) => [x.t / 60, x[k]])) : null);
  const perMinAfterGc = (k) => (afterGc ? (liveEnd.mem[k] - liveStart.mem[k]) / ((liveEnd.t - liveStart.t) / 60) : null);
  // growth over the steady window under 10% of the RSS it started from
  const noUpwardRss = afterGc ? liveEnd.mem.rss - liveStart.mem.rss < 0.1 * liveStart.mem.rss : fittedRssUnder10Pct;
  const delivered = totals && typeof totals.received === 'number' ? totals.received / seconds : null;
  return {
    rate, delivered, throttledShare: totals && totals.sent ? totals.throttled / totals.sent : null,
    seconds, samples, churn, totals, rssStart, rssEnd: samples.at(-1)?.rss,
    rssSlopePerMin: rssSlope, heapSlopePerMin: perMin('heap'), p99First, p99Last,
    noUpwardRss,
    fittedRssUnder10Pct,
    liveRssStart: liveStart?.mem?.rss ?? null,
    liveRssEnd: liveEnd?.mem?.rss ?? null,
    liveRssSlopePerMin: perMinAfterGc('rss'),
    liveHeapStart: liveStart?.mem?.heapUsed ?? null,
    liveHeapEnd: liveEnd?.mem?.heapUsed ?? null,
    liveHeapSlopePerMin: perMinAfterGc('heapUsed'),
    // outside the V8 heap: ArrayBuffers and WebAssembly memories (PGlite, Prisma's compiler)
    liveExternalStart: liveStart?.mem?.external ?? null,
    liveExternalEnd: liveEnd?.mem?.external ?? null,
    // V8's committed heap: pages a full GC emptied but V8 has not handed back yet count in the RSS
    liveHeapTotalStart: liveStart?.mem?.heapTotal ?? null,
    liveHeapTotalEnd: liveEnd?.mem?.heapTotal ?? null,
    // with --soak-gc-every: least-squares slopes over every after-GC reading
    afterGcSeries: gcSeries,
    liveRssFittedPerMin: fittedAfterGc('rss'),
    liveHeapTotalFittedPerMin: fittedAfterGc('heapTotal'),
  };
}

module.exports = {
  name: 'soak',
  fullOnly: true,
  title: 'soak: QoS 1 fan-in at half saturation with churning clients; RSS and heap slope, p99 drift',
  async run(ctx) {
    const res = {};
    const rate = await offeredRate(ctx);
    ctx.log(`soak: ${rate} msg/s offered to every column`);
    // Mosquitto is context for throughput; its memory behaviour is not what this checks
    const soaked = ctx.p.soakServers ? ctx.servers.filter((x) => ctx.p.soakServers.includes(x.name)) : ctx.servers;
    for (const s of soaked.filter((x) => x.kind !== 'mosquitto')) {
      try {
        ctx.log(`${s.name}: soak ${ctx.p.soakSeconds} s`);
        res[s.name] = await soakOne(ctx, s, rate);
        const r = res[s.name];
        ctx.log(`${s.name}: soak at ${r.rate}/s: RSS ${(r.rssStart / 2 ** 20).toFixed(0)} -> ${(r.rssEnd / 2 ** 20).toFixed(0)} MiB, slope ${(r.rssSlopePerMin / 2 ** 20).toFixed(2)} MiB/min; after a full GC ${r.liveRssStart === null ? '-' : (r.liveRssStart / 2 ** 20).toFixed(0)} -> ${r.liveRssEnd === null ? '-' : (r.liveRssEnd / 2 ** 20).toFixed(0)} MiB, p99 ${r.p99First?.toFixed(2)} -> ${r.p99Last?.toFixed(2)} ms`);
      } catch (err) {
        ctx.note(`soak ${s.name}: ${err.message.split('\n')[0]}`);
        res[s.name] = null;
      }
      await ctx.restart(s).catch(() => {});
    }
    ctx.raw('soak', 'results', res);
    const pick = (f) => Object.fromEntries(Object.entries(res).map(([k, v]) => [k, v ? f(v) : null]));
    const sc = `8 soak ${ctx.p.soakSeconds}s`;
    ctx.figure({ id: 'soak.rate', scenario: sc, label: `QoS 1 offered (${ctx.p.soakRate ? '--soak-rate' : 'half of bare aedes\' fan-in saturation'})`, unit: 'msg/s', better: null, values: pick((v) => v.rate) });
    ctx.figure({ id: 'soak.delivered', scenario: sc, label: '  delivered', unit: 'msg/s', better: 'higher', values: pick((v) => v.delivered) });
    ctx.figure({
      id: 'soak.throttled', scenario: sc, label: '  not sent: broker stopped reading', unit: '%', better: 'lower', noRatio: true,
      values: pick((v) => (v.throttledShare === null ? null : 100 * v.throttledShare)),
    });
    ctx.figure({
      id: 'soak.live.rss.slope', scenario: sc, label: 'RSS after a full GC: steady start -> end', unit: 'B', better: 'lower', values: pick((v) => v.liveRssSlopePerMin),
      target: { type: 'check', text: 'per min; growth < 10% of RSS', pass: pick((v) => v.noUpwardRss) },
    });
    if (Object.values(res).some((v) => v && v.liveRssFittedPerMin !== null)) {
      ctx.figure({ id: 'soak.live.rss.fitted', scenario: sc, label: `RSS after a full GC, fitted over readings every ${ctx.p.soakGcEverySeconds} s (per min)`, unit: 'B', better: 'lower', values: pick((v) => v.liveRssFittedPerMin) });
      ctx.figure({ id: 'soak.live.committed.fitted', scenario: sc, label: 'V8 heap committed after a full GC, fitted (per min)', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapTotalFittedPerMin) });
    }
    ctx.figure({ id: 'soak.live.rss.start', scenario: sc, label: 'RSS after a full GC, steady start', unit: 'B', better: 'lower', values: pick((v) => v.liveRssStart) });
    ctx.figure({ id: 'soak.live.rss.end', scenario: sc, label: 'RSS after a full GC, end', unit: 'B', better: 'lower', values: pick((v) => v.liveRssEnd) });
    ctx.figure({ id: 'soak.rss.slope', scenario: sc, label: 'RSS slope after warm-up (fitted, garbage included)', unit: 'B', better: 'lower', values: pick((v) => v.rssSlopePerMin) });
    ctx.figure({ id: 'soak.heap.slope', scenario: sc, label: 'heap-used slope after warm-up (fitted)', unit: 'B', better: 'lower', values: pick((v) => v.heapSlopePerMin) });
    ctx.figure({ id: 'soak.live.start', scenario: sc, label: 'live heap (after a full GC), steady start', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapStart) });
    ctx.figure({ id: 'soak.live.end', scenario: sc, label: 'live heap (after a full GC), end', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapEnd) });
    ctx.figure({ id: 'soak.live.external.start', scenario: sc, label: 'external memory after a full GC, steady start', unit: 'B', better: 'lower', values: pick((v) => v.liveExternalStart) });
    ctx.figure({ id: 'soak.live.external.end', scenario: sc, label: 'external memory after a full GC, end', unit: 'B', better: 'lower', values: pick((v) => v.liveExternalEnd) });
    ctx.figure({ id: 'soak.live.committed.start', scenario: sc, label: 'V8 heap committed after a full GC, steady start', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapTotalStart) });
    ctx.figure({ id: 'soak.live.committed.end', scenario: sc, label: 'V8 heap committed after a full GC, end', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapTotalEnd) });
    ctx.figure({ id: 'soak.live.slope', scenario: sc, label: 'live heap slope', unit: 'B', better: 'lower', values: pick((v) => v.liveHeapSlopePerMin) });
    ctx.figure({ id: 'soak.rss.end', scenario: sc, label: 'RSS at the end', unit: 'B', better: 'lower', values: pick((v) => v.rssEnd) });
    ctx.figure({ id: 'soak.p99.first', scenario: sc, label: 'p99 first third', unit: 'ms', better: 'lower', values: pick((v) => v.p99First) });
    ctx.figure({ id: 'soak.p99.last', scenario: sc, label: 'p99 last third', unit: 'ms', better: 'lower', values: pick((v) => v.p99Last) });
  },
};
