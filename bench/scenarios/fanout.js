'use strict';
// 2. Fan-out: 1 publisher, 200 subscribers of one topic; deliveries/s; none lost at QoS 1.

const { interleaved, medians, pairedRatios, saturating } = require('./common');

const N_SUB = 200;

module.exports = {
  name: 'fanout',
  title: `fan-out: 1 publisher -> ${N_SUB} subscribers of one topic, QoS 0 and QoS 1`,
  async run(ctx) {
    for (const qos of [0, 1]) {
      const res = await interleaved(ctx, ctx.servers, ctx.p.reps, (s, rep) => saturating(ctx, s, (attempt) =>
        ctx.profile(s, 'fanout', `fanout-q${qos}-r${rep}-${attempt}`, () => ctx.gen(0).call('fanout', {
          ...ctx.target(s), nSub: N_SUB, qos, payload: 64, topicPrefix: `fo/${ctx.rid}q${qos}r${rep}a${attempt}`,
          clientPrefix: `fo-${ctx.rid}q${qos}r${rep}a${attempt}`, warmupMs: ctx.p.warmupMs, durationMs: ctx.p.durationMs,
        }))));
      ctx.raw('fanout', `qos${qos}`, res);
      ctx.figure({
        id: `fanout.qos${qos}`, scenario: '2 fan-out', label: `fan-out QoS ${qos} deliveries`, unit: 'msg/s', better: 'higher',
        values: medians(res, (r) => r.deliveries), pairedRatios: pairedRatios(res, (r) => r.deliveries),
        target: { type: 'ratio', op: '>=', value: 0.9 },
      });
      ctx.figure({
        id: `fanout.qos${qos}.gencpu`, scenario: '2 fan-out', label: '  generator cpu (cores)', unit: 'x', better: null,
        values: medians(res, (r) => r.genCpu),
      });
      ctx.figure({
        id: `fanout.qos${qos}.servercpu`, scenario: '2 fan-out', label: '  server cpu (cores)', unit: 'x', better: null,
        values: medians(res, (r) => r.serverCpu),
      });
      ctx.figure({
        id: `fanout.qos${qos}.cpupermsg`, scenario: '2 fan-out', label: '  server cpu per delivery', unit: 'us', better: 'lower',
        values: medians(res, (r) => (r.serverCpu && r.deliveries ? (r.serverCpu / r.deliveries) * 1e6 : null)),
      });
      if (qos === 1) {
        const lost = {};
        for (const [name, list] of Object.entries(res)) {
          const ok = list.filter(Boolean);
          lost[name] = ok.length ? ok.reduce((a, r) => a + r.lost, 0) : null;
        }
        ctx.figure({
          id: 'fanout.qos1.lost', scenario: '2 fan-out', label: 'fan-out QoS 1 lost (all runs)', unit: 'count', better: 'lower',
          values: lost, target: { type: 'abs', op: '==', value: 0, text: '0 lost' },
        });
      }
    }
  },
};
