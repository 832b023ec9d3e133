'use strict';
// 3. Latency at a fixed rate below saturation: 10 publishers -> 1 wildcard subscriber at
// 2,000 msg/s in total; publish -> receive p50 / p99 / p99.9 (timestamp in the payload).

const { interleaved, medians, pairedRatios } = require('./common');

module.exports = {
  name: 'latency',
  title: 'latency at a fixed 2,000 msg/s (10 publishers -> 1 wildcard subscriber), QoS 0 and 1',
  async run(ctx) {
    const rate = ctx.p.latencyRate;
    const warmupMs = ctx.p.quick ? 500 : 1000;
    ctx.quietLatency ??= {};
    for (const qos of [0, 1]) {
      // a p99 of a few thousand samples moves with every scheduler hiccup of a shared 2-core
      // machine: stalls of 3-25 ms that hit Mosquitto as often as aedes, line up with no GC in
      // any server or generator, and come in clusters of a few seconds. Many short repetitions,
      // interleaved across columns, give each column the same exposure, and their median rejects
      // the repetitions a cluster hit (9 x 4 s instead of 5 x 8 s: the same time, same samples).
      const reps = ctx.p.quick ? ctx.p.reps : Math.max(ctx.p.reps, 9);
      const res = await interleaved(ctx, ctx.servers, reps, async (s, rep) => {
        const g = ctx.gen(0);
        const tag = `${ctx.rid}q${qos}r${rep}`;
        await g.call('rateStart', {
          ...ctx.target(s), name: 'lat', mode: 'wildcard', n: 10, qos, rate, payload: 64,
          topicPrefix: `lat/${tag}`, clientPrefix: `lat-${tag}`, warmupMs,
          keepSamples: true, maxSamples: 4 * rate * (warmupMs + ctx.p.latencyMs) / 1000,
        });
        await ctx.sleep(warmupMs + ctx.p.latencyMs);
        const r = await g.call('rateStop', { name: 'lat' });
        if (r.received < r.sent * 0.99) ctx.note(`latency ${s.name} QoS ${qos}: received ${r.received} of ${r.sent}`);
        return r;
      });
      ctx.raw('latency', `qos${qos}`, res);
      for (const [k, label] of [['p50', 'p50'], ['p99', 'p99'], ['p999', 'p99.9']]) {
        const values = medians(res, (r) => r.latency[k]);
        if (k === 'p99') for (const [n, v] of Object.entries(values)) (ctx.quietLatency[n] ??= {})[`qos${qos}`] = v;
        // the ratio is the median of the per-cycle ratios (each repetition against bare aedes'
        // of the same cycle); the ratio of the medians is kept alongside for comparison
        const paired = pairedRatios(res, (r) => r.latency[k]);
        const ofMedians = Object.fromEntries(Object.entries(values).filter(([n]) => n !== 'aedes').map(([n, v]) => [n, typeof v === 'number' && values.aedes ? v / values.aedes : null]));
        ctx.figure({
          id: `latency.qos${qos}.${k}`, scenario: '3 latency', label: `latency QoS ${qos} ${label} @${rate}/s`, unit: 'ms', better: 'lower',
          values, pairedRatios: paired, ratioOfMedians: ofMedians, target: k === 'p99' ? { type: 'ratio', op: '<=', value: 1.2 } : undefined,
        });
      }
    }
  },
};
