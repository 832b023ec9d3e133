#!/usr/bin/env node
'use strict';
// Summarises a .cpuprofile (from `npm run bench -- --profile=fanin` or `node --cpu-prof`):
// self and inclusive time per function, and self time per file / package. A .heapprofile
// (`--profile-alloc`, `node --heap-prof`) is read the same way, in bytes allocated.
//   node bench/prof-top.js <file.cpuprofile> [--top=30] [--filter=substring]
//   node bench/prof-top.js <a.cpuprofile> --compare=<b.cpuprofile>   self-time shares side by side

const fs = require('node:fs');
const path = require('node:path');

function load(file) {
  const p = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (p.head) return loadHeap(p);
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const dt = new Map();
  // time per sample: timeDeltas[i] belongs to samples[i]
  for (let i = 0; i < p.samples.length; i++) dt.set(p.samples[i], (dt.get(p.samples[i]) || 0) + (p.timeDeltas[i] || 0));
  return { p, byId, dt };
}

/** a sampling heap profile as the same shape: its tree flattened, bytes in place of time */
function loadHeap(h) {
  const nodes = [];
  const dt = new Map();
  const flatten = (n) => {
    nodes.push({ id: n.id, callFrame: n.callFrame, children: (n.children || []).map((c) => c.id) });
    if (n.selfSize) dt.set(n.id, n.selfSize);
    for (const c of n.children || []) flatten(c);
  };
  flatten(h.head);
  const p = { nodes };
  return { p, byId: new Map(nodes.map((n) => [n.id, n])), dt, bytes: true };
}

function where(cf) {
  const url = cf.url || '';
  let file = url.replace(/^file:\/\//, '');
  const nm = file.lastIndexOf('node_modules/');
  let pkg;
  if (nm >= 0) {
    const rest = file.slice(nm + 13).split('/');
    pkg = rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
    file = `${pkg}/${rest.slice(rest[0].startsWith('@') ? 2 : 1).join('/')}`;
  } else if (file.includes('/dist/')) {
    file = file.slice(file.indexOf('/dist/') + 1);
    pkg = 'service (dist)';
  } else if (file.startsWith('node:') || !file.startsWith('/')) {
    pkg = file ? 'node core' : '(native/vm)';
  } else {
    file = path.basename(file);
    pkg = 'other';
  }
  return { file, pkg };
}

/** self time per function key, as a share of the profile's busy (non-idle) time */
function shares(file) {
  const { p, byId, dt } = load(file);
  const self = new Map();
  let busy = 0;
  for (const [id, t] of dt) {
    const cf = byId.get(id).callFrame;
    if (cf.functionName === '(idle)') continue;
    const k = `${cf.functionName || '(anonymous)'}  ${where(cf).file}:${cf.lineNumber + 1}`;
    self.set(k, (self.get(k) || 0) + t);
    busy += t;
  }
  void p;
  for (const [k, t] of self) self.set(k, t / busy);
  return self;
}

function compare(a, b, top) {
  const sa = shares(a);
  const sb = shares(b);
  const keys = new Set([...sa.keys(), ...sb.keys()]);
  const rows = [...keys].map((k) => ({ k, a: sa.get(k) || 0, b: sb.get(k) || 0 })).sort((x, y) => Math.abs(y.b - y.a) - Math.abs(x.b - x.a));
  process.stdout.write(`share of the total (busy time, or bytes): A=${a}\n  B=${b}\n     A       B    B-A\n`);
  for (const r of rows.slice(0, top)) {
    process.stdout.write(`${(100 * r.a).toFixed(1).padStart(5)}%  ${(100 * r.b).toFixed(1).padStart(5)}%  ${(100 * (r.b - r.a)).toFixed(1).padStart(5)}  ${r.k}\n`);
  }
}

function main() {
  const args = process.argv.slice(2);
  const cmpWith = (args.find((a) => a.startsWith('--compare=')) || '').slice(10);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    process.stderr.write('usage: node bench/prof-top.js <file.cpuprofile> [--top=30] [--filter=text]\n');
    process.exit(2);
  }
  const top = Number((args.find((a) => a.startsWith('--top=')) || '--top=30').slice(6));
  if (cmpWith) return compare(file, cmpWith, top);
  const filter = (args.find((a) => a.startsWith('--filter=')) || '').slice(9);
  const { p, byId, dt, bytes } = load(file);
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children || []) parent.set(c, n.id);
  const total = [...dt.values()].reduce((a, b) => a + b, 0);
  const self = new Map();
  const incl = new Map();
  const perFile = new Map();
  const perPkg = new Map();
  const key = (cf) => `${cf.functionName || '(anonymous)'}  ${where(cf).file}:${cf.lineNumber + 1}`;
  for (const [id, t] of dt) {
    const n = byId.get(id);
    const cf = n.callFrame;
    const k = key(cf);
    self.set(k, (self.get(k) || 0) + t);
    const w = where(cf);
    perFile.set(w.file || cf.functionName, (perFile.get(w.file || cf.functionName) || 0) + t);
    perPkg.set(w.pkg, (perPkg.get(w.pkg) || 0) + t);
    const seen = new Set();
    for (let x = id; x !== undefined; x = parent.get(x)) {
      const kk = key(byId.get(x).callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) || 0) + t);
    }
  }
  const pct = (t) => `${((100 * t) / total).toFixed(1).padStart(5)}%`;
  const show = (title, m, n) => {
    process.stdout.write(`\n${title}\n`);
    [...m.entries()].filter(([k]) => !filter || k.includes(filter)).sort((a, b) => b[1] - a[1]).slice(0, n)
      .forEach(([k, t]) => process.stdout.write(`${pct(t)}  ${k}\n`));
  };
  const what = bytes ? 'bytes' : 'time';
  process.stdout.write(`${file}: ${bytes ? `${(total / 1048576).toFixed(1)} MiB allocated` : `${(total / 1e6).toFixed(2)} s sampled`}\n`);
  show(`self ${what} by package`, perPkg, 15);
  show(`self ${what} by file`, perFile, top);
  show(`self ${what} by function`, self, top);
  show(`inclusive ${what} by function`, incl, top);
}

main();
