'use strict';
// 1. Fan-in: 50 publishers on their own topics, 1 subscriber on a wildcard; delivered msg/s.

const { interleaved, medians, pairedRatios, byName, saturating } = require('./common');

const N_PUB = 50;

async function measure(ctx, s, qos, tag, extra = {}) {
  return ctx.gen(0).call('fanin', {
    ...ctx.target(s), nPub: N_PUB, qos, payload: 64, topicPrefix: `fi/${tag}`, clientPrefix: `fi-${tag}`,
    warmupMs: ctx.p.warmupMs, durationMs: ctx.p.durationMs, ...extra,
  });
}

module.exports = {
  name: 'fanin',
  title: `fan-in: ${N_PUB} publishers -> 1 wildcard subscriber, QoS 0 and QoS 1, payload 64 B`,
  measure,
  async run(ctx) {
    ctx.saturation ??= {};
    for (const qos of [0, 1]) {
      const res = await interleaved(ctx, ctx.servers, ctx.p.reps, (s, rep) => saturating(ctx, s, (attempt) =>
        ctx.profile(s, 'fanin', `fanin-q${qos}-r${rep}-${attempt}`, () => measure(ctx, s, qos, `${ctx.rid}q${qos}r${rep}a${attempt}`))));
      ctx.raw('fanin', `qos${qos}`, res);
      const delivered = medians(res, (r) => r.delivered);
      for (const [name, v] of Object.entries(delivered)) (ctx.saturation[name] ??= {})[`qos${qos}`] = v;
      ctx.figure({
        id: `fanin.qos${qos}`, scenario: '1 fan-in', label: `fan-in QoS ${qos} delivered`, unit: 'msg/s', better: 'higher',
        values: delivered, pairedRatios: pairedRatios(res, (r) => r.delivered), target: { type: 'ratio', op: '>=', value: 0.9 },
      });
      ctx.figure({
        id: `fanin.qos${qos}.gencpu`, scenario: '1 fan-in', label: `  generator cpu (cores)`, unit: 'x', better: null,
        values: medians(res, (r) => r.genCpu),
      });
      ctx.figure({
        id: `fanin.qos${qos}.servercpu`, scenario: '1 fan-in', label: `  server cpu (cores)`, unit: 'x', better: null,
        values: medians(res, (r) => r.serverCpu),
      });
      ctx.figure({
        id: `fanin.qos${qos}.cpupermsg`, scenario: '1 fan-in', label: '  server cpu per message delivered', unit: 'us', better: 'lower',
        values: medians(res, (r) => (r.serverCpu && r.delivered ? (r.serverCpu / r.delivered) * 1e6 : null)),
      });
    }

    // The generator must not be the bottleneck: Mosquitto (C, same generator) has to be
    // driven clearly past bare aedes; without Mosquitto, two generator processes on bare aedes
    // must not deliver more than one.
    const aedes = byName(ctx, 'aedes');
    const mosq = byName(ctx, 'mosquitto');
    const a0 = ctx.saturation.aedes?.qos0;
    if (mosq && a0) {
      const m0 = ctx.saturation.mosquitto?.qos0;
      const ok = m0 >= 1.3 * a0;
      ctx.figure({
        id: 'fanin.headroom', scenario: '1 fan-in', label: 'generator headroom: mosquitto / aedes QoS 0', unit: 'x', better: 'higher',
        values: { aedes: 1, mosquitto: m0 / a0 },
        target: { type: 'check', text: '>= 1.3 (generator not the limit)', pass: {} },
        note: ok ? 'generator drives Mosquitto past bare aedes' : 'generator may be the bottleneck',
      });
      if (!ok) {
        const mr = ctx.lastRaw?.('fanin', 'qos0')?.mosquitto?.filter(Boolean) ?? [];
        const gen = Math.max(...mr.map((r) => r.genCpu));
        ctx.note(`fan-in: the generator pushed Mosquitto only ${(m0 / a0).toFixed(2)}x bare aedes while using at most ${gen.toFixed(2)} of its core: ` +
          (gen < 0.85 ? 'not a generator cpu limit; the machine was busy (closed loop waiting on scheduling)' : 'the generator may be the bottleneck'));
      }
    } else if (aedes && a0) {
      const half = Math.floor(N_PUB / 2);
      const [r1, r2] = await Promise.all([
        ctx.gen(0).call('fanin', { ...ctx.target(aedes), nPub: half, qos: 0, topicPrefix: `fih/${ctx.rid}a`, clientPrefix: `fiha-${ctx.rid}`, warmupMs: ctx.p.warmupMs, durationMs: ctx.p.durationMs }),
        ctx.gen(1).call('fanin', { ...ctx.target(aedes), nPub: N_PUB - half, qos: 0, topicPrefix: `fih/${ctx.rid}b`, clientPrefix: `fihb-${ctx.rid}`, warmupMs: ctx.p.warmupMs, durationMs: ctx.p.durationMs }),
      ]);
      const two = r1.delivered + r2.delivered;
      ctx.figure({
        id: 'fanin.headroom', scenario: '1 fan-in', label: 'two generators (a subscriber each) / one, aedes QoS 0', unit: 'x', better: null,
        values: { aedes: two / a0 }, note: 'near 1.0: one generator already saturates aedes',
      });
    }
  },
};
