'use strict';
// Helpers shared by the scenarios.

const { median } = require('../lib/report');

/**
 * Runs fn(server, rep) for every server, rep-major (aedes, service, ..., aedes, service, ...)
 * so that slow drifts of a shared machine hit every column alike. Returns {name: [results]}.
 */
async function interleaved(ctx, servers, reps, fn) {
  const out = {};
  for (const s of servers) out[s.name] = [];
  for (let rep = 0; rep < reps; rep++) {
    for (const s of servers) {
      try {
        out[s.name].push(await fn(s, rep));
      } catch (err) {
        ctx.note(`${s.name}: ${err.message.split('\n')[0]}`);
        out[s.name].push(null);
      }
    }
  }
  return out;
}

/**
 * A saturation measurement is only valid if someone was saturated: the server (its core) or
 * the generator. When both idled, the machine's other work took the cpu: measure again
 * (at most ctx.p.retries times) and mark what stays starved. fn(attempt) must use fresh ids.
 */
async function saturating(ctx, s, fn) {
  let r;
  for (let attempt = 0; attempt <= ctx.p.retries; attempt++) {
    r = await fn(attempt);
    r.attempts = attempt + 1;
    r.starved = typeof r.serverCpu === 'number' && r.serverCpu < 0.85 && r.genCpu < 0.85;
    if (!r.starved || s.kind === 'mosquitto') break;
    ctx.log(`${s.name}: server used ${r.serverCpu.toFixed(2)} of its core, generator ${r.genCpu.toFixed(2)}: machine busy, measuring again`);
    await ctx.sleep(2000);
  }
  return r;
}

/** {name: median of pick(result)} over the non-null results */
function medians(results, pick) {
  const v = {};
  for (const [name, list] of Object.entries(results)) {
    const xs = list.filter((r) => r !== null && r !== undefined).map(pick).filter((x) => typeof x === 'number');
    v[name] = xs.length ? median(xs) : null;
  }
  return v;
}

/**
 * {name: median over the repetitions of pick(its result) / pick(the `baseName` column's result of
 * the same cycle)}, for results of interleaved(). The machine's speed drifts by 2x within minutes
 * here: a ratio within one cycle (seconds apart) cancels that drift, a ratio of two medians does not.
 */
function pairedRatios(results, pick, baseName = 'aedes') {
  const base = results[baseName] || [];
  const v = {};
  for (const [name, list] of Object.entries(results)) {
    if (name === baseName) continue;
    const xs = [];
    for (let i = 0; i < list.length; i++) {
      const a = base[i] ? pick(base[i]) : null;
      const x = list[i] ? pick(list[i]) : null;
      if (typeof a === 'number' && a > 0 && typeof x === 'number') xs.push(x / a);
    }
    v[name] = xs.length ? median(xs) : null;
  }
  return v;
}

const services = (ctx) => ctx.servers.filter((s) => s.kind === 'service');
const byName = (ctx, name) => ctx.servers.find((s) => s.name === name);

module.exports = { interleaved, medians, pairedRatios, services, byName, saturating };
