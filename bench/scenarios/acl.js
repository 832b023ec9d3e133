'use strict';
// 6. ACL and tenant scale: one tenant with many ACL rules (mixed wildcards and ${device} /
// ${clientid} placeholders) while many other tenants exist; fan-in throughput on it compared
// with the 1-rule bench tenant, measured back to back (and bare aedes for context).

const crypto = require('node:crypto');
const { interleaved, medians, pairedRatios, services, saturating } = require('./common');

const PREFIX = 'fleet/bench/tele'; // device "bench": matched by fleet/${device}/tele/+

function rule(i) {
  switch (i % 6) {
    case 0: return { device: null, action: 'publish', topic: `site/${i}/+/temp`, permission: 'allow', priority: 0 };
    case 1: return { device: 'bench', action: 'subscribe', topic: `site/${i}/#`, permission: 'allow', priority: 0 };
    case 2: return { device: null, action: 'all', topic: 'devices/${device}/' + i + '/#', permission: 'allow', priority: i % 3 };
    case 3: return { device: null, action: 'publish', topic: 'cmd/${clientid}/' + i, permission: 'deny', priority: 1 };
    case 4: return { device: null, action: 'all', topic: `+/${i}/+/#`, permission: 'deny', priority: 0 };
    default: return { device: null, action: 'subscribe', topic: 'fleet/${device}/r' + i + '/+', permission: 'allow', priority: 2 };
  }
}

async function setup(ctx, s) {
  const rest = s.rest;
  const t0 = performance.now();
  const nTenants = ctx.p.aclTenants;
  await ctx.concurrently(nTenants, 16, async (i) => {
    const r = await rest.request('POST', '/api/v1/tenants', { slug: `x${i}-${ctx.rid}` });
    if (r.status !== 201 && r.status !== 409) throw new Error(`create tenant x${i}: ${r.status} ${r.text.slice(0, 200)}`);
  });
  const tenantsSeconds = (performance.now() - t0) / 1000;
  const slug = `acl-${ctx.rid}`;
  const password = crypto.randomBytes(12).toString('base64url');
  await ctx.createTenant(ctx, s, slug);
  await rest.must('POST', `/api/v1/tenants/${slug}/devices`, { name: 'bench', password });
  const nRules = ctx.p.aclRules;
  const t1 = performance.now();
  await ctx.concurrently(nRules - 2, 16, async (i) => {
    await rest.must('POST', `/api/v1/tenants/${slug}/acls`, rule(i + 1));
  });
  // the two that decide: allow the fan-in topics, deny a sibling at a higher priority
  await rest.must('POST', `/api/v1/tenants/${slug}/acls`, { device: null, action: 'all', topic: 'fleet/${device}/tele/+', permission: 'allow', priority: 0 });
  await rest.must('POST', `/api/v1/tenants/${slug}/acls`, { device: null, action: 'publish', topic: 'fleet/${device}/tele/secret', permission: 'deny', priority: 5 });
  const rulesSeconds = (performance.now() - t1) / 1000;
  ctx.log(`${s.name}: ${nTenants} tenants in ${tenantsSeconds.toFixed(1)} s, ${nRules} rules in ${rulesSeconds.toFixed(1)} s`);
  return { slug, auth: { username: `${slug}:bench`, password }, tenantsSeconds, rulesSeconds };
}

module.exports = {
  rule,
  name: 'acl',
  title: 'ACL and tenant scale: fan-in on a tenant with many rules among many tenants vs a 1-rule tenant',
  async run(ctx) {
    const svcs = services(ctx);
    if (svcs.length === 0) {
      ctx.note('acl: no service column, skipped');
      return;
    }
    const setups = {};
    for (const s of svcs) setups[s.name] = await setup(ctx, s);
    ctx.raw('acl', 'setup', setups);
    const aedes = ctx.servers.find((s) => s.kind === 'aedes');
    // columns: aedes, <svc> (1 rule), <svc>+acl (many rules)
    const variants = [aedes, ...svcs.flatMap((s) => [s, { ...s, name: `${s.name}+acl`, base: s }])];
    for (const qos of [0, 1]) {
      const res = await interleaved(ctx, variants, ctx.p.reps, (v, rep) => saturating(ctx, v.base || v, (attempt) => {
        const s = v.base || v;
        const tag = `${ctx.rid}a${qos}${rep}${attempt}${v.base ? 'm' : 'o'}`;
        const target = v.base ? { ...ctx.target(s), auth: setups[s.name].auth } : ctx.target(s);
        return ctx.profile(s, 'acl', `acl-q${qos}-r${rep}-${v.base ? 'many' : 'one'}`, () => ctx.gen(0).call('fanin', {
          ...target, nPub: 50, qos, payload: 64, topicPrefix: PREFIX, clientPrefix: `acl-${tag}`,
          warmupMs: ctx.p.warmupMs, durationMs: ctx.p.durationMs,
        }));
      }));
      ctx.raw('acl', `qos${qos}`, res);
      const m = medians(res, (r) => r.delivered);
      const sc = '6 ACL/tenant scale';
      const one = { aedes: m.aedes };
      const many = { aedes: m.aedes };
      const ratio = {};
      const pass = {};
      for (const s of svcs) {
        one[s.name] = m[s.name];
        many[s.name] = m[`${s.name}+acl`];
        // per cycle, like every ratio of interleaved repetitions (see bench/README.md)
        ratio[s.name] = pairedRatios({ one: res[s.name], many: res[`${s.name}+acl`] }, (r) => r.delivered, 'one').many;
        pass[s.name] = ratio[s.name] !== null && ratio[s.name] >= 0.8;
      }
      ctx.figure({ id: `acl.qos${qos}.one`, scenario: sc, label: `fan-in QoS ${qos}, 1-rule tenant`, unit: 'msg/s', better: 'higher', values: one });
      ctx.figure({
        id: `acl.qos${qos}.many`, scenario: sc, label: `fan-in QoS ${qos}, ${ctx.p.aclRules} rules, ${ctx.p.aclTenants} other tenants`, unit: 'msg/s', better: 'higher', values: many,
      });
      ctx.figure({
        id: `acl.qos${qos}.ratio`, scenario: sc, label: `  many rules / 1 rule, QoS ${qos}`, unit: 'x', better: 'higher', values: ratio,
        target: { type: 'check', text: '>= 0.8', pass },
      });
    }

    // Memory: the ACL is compiled per connected client, so its size counts per connection
    const n = ctx.p.quick ? 200 : 2000;
    const mem = { one: {}, many: {} };
    for (const s of svcs) {
      for (const [key, auth] of [['one', s.fixture.auth], ['many', setups[s.name].auth]]) {
        await ctx.sleep(1000);
        const before = s.status().rss;
        const r = await ctx.gen(0).call('holdOpen', {
          ...ctx.target(s), group: 'aclmem', n, clientPattern: `am-${ctx.rid}-${key}-{i}`, userPattern: auth.username, passPattern: auth.password, keepalive: 60,
        }, 900000);
        await ctx.sleep(2000);
        const after = s.status().rss;
        await ctx.gen(0).call('holdClose', { group: 'aclmem', graceful: false });
        mem[key][s.name] = r.ok ? (after - before) / r.ok : null;
      }
    }
    ctx.raw('acl', 'memory', { n, ...mem });
    const sc = '6 ACL/tenant scale';
    ctx.figure({ id: 'acl.mem.one', scenario: sc, label: `RSS per connection (${n}), 1-rule tenant`, unit: 'B', better: 'lower', noRatio: true, values: mem.one });
    ctx.figure({ id: 'acl.mem.many', scenario: sc, label: `RSS per connection (${n}), ${ctx.p.aclRules}-rule tenant`, unit: 'B', better: 'lower', noRatio: true, values: mem.many });
  },
};
