#!/usr/bin/env node
'use strict';
// Counts the objects of a .heapsnapshot by kind (compiled code, strings, closures, objects by
// constructor...): a full mark-compact pays per object, so this is what decides its pause.
//   node bench/heap-stats.js <file.heapsnapshot> [--top=30]
// A snapshot of the service at rest: start it with `node --expose-gc -r bench/lib/profiler.js
// dist/src/main.js` and BENCH_PROF_CTL/BENCH_PROF_DIR set, then write "heap <pid> <file>" into
// the BENCH_PROF_CTL file (bench/lib/profiler.js).

const fs = require('node:fs');

function kindOf(type, name) {
  switch (type) {
    case 'string':
    case 'concatenated string':
    case 'sliced string':
      return '(string)';
    case 'code':
      return '(compiled code)';
    case 'closure':
      return '(closure)';
    case 'number':
      return '(number)';
    case 'hidden':
    case 'array':
    case 'native':
      return `${type}: ${name.slice(0, 40)}`;
    default:
      return `${type}: ${name.slice(0, 50)}`;
  }
}

function main() {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    process.stderr.write('usage: node bench/heap-stats.js <file.heapsnapshot> [--top=30]\n');
    process.exit(2);
  }
  const top = Number((args.find((a) => a.startsWith('--top=')) || '--top=30').slice(6));
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'));
  const meta = snap.snapshot.meta;
  const stride = meta.node_fields.length;
  const types = meta.node_types[0];
  const iType = meta.node_fields.indexOf('type');
  const iName = meta.node_fields.indexOf('name');
  const iSize = meta.node_fields.indexOf('self_size');
  const byKind = new Map();
  let objects = 0;
  let bytes = 0;
  for (let i = 0; i < snap.nodes.length; i += stride) {
    const kind = kindOf(types[snap.nodes[i + iType]], snap.strings[snap.nodes[i + iName]]);
    const size = snap.nodes[i + iSize];
    const entry = byKind.get(kind) || { count: 0, size: 0 };
    entry.count++;
    entry.size += size;
    byKind.set(kind, entry);
    objects++;
    bytes += size;
  }
  process.stdout.write(`${file}: ${objects} objects, ${(bytes / 1048576).toFixed(1)} MiB (self sizes, ArrayBuffer contents included)\n`);
  process.stdout.write('   count       KiB  kind\n');
  for (const [kind, e] of [...byKind].sort((a, b) => b[1].count - a[1].count).slice(0, top)) {
    process.stdout.write(`${String(e.count).padStart(8)}  ${(e.size / 1024).toFixed(0).padStart(8)}  ${kind}\n`);
  }
}

main();
