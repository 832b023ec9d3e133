#!/usr/bin/env node
'use strict';
// Where does an idle connection's memory go? Starts bare aedes or our service the way the
// bench does (pinned, --expose-gc, bench/lib/profiler.js preloaded), holds N idle clients from
// generator processes, and splits the growth per connection into resident memory, V8 heap
// (by constructor, from two heap snapshots taken after a full GC), external memory and the
// rest (native: sockets, libuv, malloc).
//   node bench/conn-memory.js [--server=aedes|service] [--n=5000] [--top=25] [--service-dir=DIR]
//                             [--acl-rules=N]  (service: the tenant gets N rules of the acl scenario's mix)
//                             [--no-heap]      (resident memory only, no heap snapshots)
//                             [--retainers=Object,Array,...]  (who holds the new objects of those rows)

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { setTimeout: sleep } = require('node:timers/promises');
const { arg } = require('./lib/cli');
const { Worker, askProfiler } = require('./lib/proc');
const { aggregate, rowName } = require('./lib/heap-snapshot');
const { BENCH_LIMITS, addOpenDevice } = require('./lib/fixture');
const { AedesServer, ServiceServer, ensureBuild, REPO } = require('./lib/servers');

/**
 * For the nodes of the given rows that are in `after` but not in `before` (by node id), counts
 * their retainers: "<retainer row> .<edge name>". Shows which of our fields or closures hold
 * what a connection adds.
 */
function retainers(before, after, rows, perConn) {
  const f = after.snapshot.meta.node_fields;
  const nf = f.length;
  const iId = f.indexOf('id');
  const iEdges = f.indexOf('edge_count');
  const ef = after.snapshot.meta.edge_fields;
  const enf = ef.length;
  const edgeTypes = after.snapshot.meta.edge_types[0];
  const iEType = ef.indexOf('type');
  const iEName = ef.indexOf('name_or_index');
  const iTo = ef.indexOf('to_node');
  const old = new Set();
  for (let i = 0; i < before.nodes.length; i += before.snapshot.meta.node_fields.length) {
    old.add(before.nodes[i + before.snapshot.meta.node_fields.indexOf('id')]);
  }
  const wanted = new Set(rows);
  const counts = new Map();
  let edge = 0;
  for (let i = 0; i < after.nodes.length; i += nf) {
    const from = rowName(after, i);
    for (let k = 0; k < after.nodes[i + iEdges]; k++, edge += enf) {
      const to = after.edges[edge + iTo];
      if (old.has(after.nodes[to + iId])) continue;
      const target = rowName(after, to);
      if (!wanted.has(target)) continue;
      const et = edgeTypes[after.edges[edge + iEType]];
      if (et === 'weak') continue;
      const en = et === 'element' || et === 'hidden' ? `[${et}]` : after.strings[after.edges[edge + iEName]];
      const key = `${target.padEnd(24)} <- ${from} .${en}`;
      counts.set(key, (counts.get(key) || 0) + 1);
    }
  }
  return [...counts].filter(([, c]) => c / perConn >= 0.5).sort((a, b) => b[1] - a[1]).map(([k, c]) => `  ${(c / perConn).toFixed(2).padStart(6)}/conn  ${k}`);
}

async function main() {
  const kind = arg('server', 'aedes');
  const n = Number(arg('n', 5000));
  const top = Number(arg('top', 25));
  const cpus = os.cpus().length;
  const serverCpus = arg('server-cpus', '0');
  const genCpus = arg('gen-cpus', cpus > 1 ? `1-${cpus - 1}` : '0');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'conn-memory-'));
  const ctl = path.join(tmp, 'ctl');
  fs.writeFileSync(ctl, 'idle\n');
  let server;
  if (kind === 'aedes') server = new AedesServer({ cpus: serverCpus, tmp });
  else if (kind === 'service') {
    const dir = arg('service-dir') ? path.resolve(arg('service-dir')) : REPO;
    const b = ensureBuild((m) => process.stderr.write(`${m}\n`), dir);
    if (!b.ok) throw new Error(b.reason);
    server = new ServiceServer({ db: 'pglite', cpus: serverCpus, tmp, dir });
  } else throw new Error('--server=aedes|service');
  server.nodeArgs = ['--expose-gc', '-r', path.join(__dirname, 'lib', 'profiler.js')];
  server.extraEnv = { BENCH_PROF_CTL: ctl, BENCH_PROF_DIR: tmp };
  const gens = [new Worker({ cpus: genCpus, label: 'gen0' }), new Worker({ cpus: genCpus, label: 'gen1' })];
  let seq = 0;
  /** asks the server process for a snapshot or a memoryUsage dump and waits for the file */
  async function ask(verb) {
    const file = path.join(tmp, `${verb}-${++seq}.${verb === 'heap' ? 'heapsnapshot' : 'json'}`);
    return askProfiler(ctl, server.pid, verb, file, 180000);
  }
  async function measure() {
    const mem = JSON.parse(fs.readFileSync(await ask('mem'), 'utf8'));
    await sleep(500);
    return { ...mem, rss: server.status().rss };
  }
  try {
    await server.start();
    let creds = {};
    if (kind === 'service') {
      const slug = `mem-${crypto.randomBytes(3).toString('hex')}`;
      const password = crypto.randomBytes(12).toString('base64url');
      await server.rest.must('POST', '/api/v1/tenants', { slug, limits: BENCH_LIMITS });
      await addOpenDevice(server.rest, slug, 'bench', password);
      const extra = Number(arg('acl-rules', 0));
      const { rule } = require('./scenarios/acl');
      for (let i = 1; i < extra; i++) await server.rest.must('POST', `/api/v1/tenants/${slug}/acls`, rule(i));
      creds = { userPattern: `${slug}:bench`, passPattern: password };
    }
    const common = { host: '127.0.0.1', port: server.mqttPort, keepalive: 60, concurrency: 100, ...creds };
    // warm the code paths (and the credential cache) so that they are not counted per connection
    await gens[0].call('holdOpen', { ...common, group: 'warm', n: 300, clientPattern: 'warm-{i}' });
    await gens[0].call('holdClose', { group: 'warm' });
    await sleep(1500);
    const half = Math.ceil(n / 2);
    const open = async (tag) => {
      const parts = await Promise.all([
        gens[0].call('holdOpen', { ...common, group: 'idle', n: half, first: 0, clientPattern: `${tag}-{i}` }, 900000),
        gens[1].call('holdOpen', { ...common, group: 'idle', n: n - half, first: half, clientPattern: `${tag}-{i}` }, 900000),
      ]);
      await sleep(2000);
      return parts[0].ok + parts[1].ok;
    };
    const close = async () => {
      await gens[0].call('holdClose', { group: 'idle', graceful: false });
      await gens[1].call('holdClose', { group: 'idle', graceful: false });
      await sleep(2000);
    };
    // phase 1, resident memory (no snapshot: writing one grows the malloc heap by itself)
    const before = await measure();
    const ok = await open('rss');
    const after = await measure();
    await close();
    const per = (k) => (after[k] - before[k]) / ok;
    const kb = (x) => `${(x / 1024).toFixed(2)} KiB`;
    const out = [];
    out.push(`${server.label}${arg('acl-rules') ? `, tenant with ${arg('acl-rules')} ACL rules` : ''}, ${ok} idle connections (node ${process.version}), per connection:`);
    out.push(`  RSS            ${kb(per('rss'))}`);
    out.push(`  V8 heap used   ${kb(per('heapUsed'))}`);
    out.push(`  external       ${kb(per('external'))} (ArrayBuffers ${kb(per('arrayBuffers'))})`);
    out.push(`  rest           ${kb(per('rss') - per('heapUsed') - per('external'))}  (native: sockets, libuv, malloc; heap pages not returned)`);
    process.stdout.write(out.join('\n') + '\n');
    out.length = 0;
    if (process.argv.includes('--no-heap')) return;
    // phase 2, the V8 heap by constructor: snapshots before and after the same connections
    const snap0 = await ask('heap');
    const ok2 = await open('heap');
    const snap1 = await ask('heap');
    await close();
    const s0 = JSON.parse(fs.readFileSync(snap0, 'utf8'));
    const s1 = JSON.parse(fs.readFileSync(snap1, 'utf8'));
    const a0 = aggregate(s0);
    const a1 = aggregate(s1);
    const rows = [];
    for (const [name, e] of a1) {
      const b = a0.get(name) || { size: 0, count: 0 };
      const d = e.size - b.size;
      if (d > 0) rows.push({ name, bytes: d / ok2, count: (e.count - b.count) / ok2 });
    }
    rows.sort((x, y) => y.bytes - x.bytes);
    const total = rows.reduce((s, x) => s + x.bytes, 0);
    out.push('', `  V8 heap growth by constructor (snapshot self sizes; total ${kb(total)}):`);
    for (const x of rows.slice(0, top)) out.push(`  ${x.bytes.toFixed(0).padStart(7)} B  ${x.count.toFixed(2).padStart(6)}/conn  ${x.name}`);
    if (arg('retainers')) out.push('', '  retainers of the new objects in those rows:', ...retainers(s0, s1, arg('retainers').split(','), ok2));
    process.stdout.write(out.join('\n') + '\n');
  } finally {
    for (const g of gens) await g.stop();
    await server.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => {
  console.error(err);
  process.exit(1);
});
