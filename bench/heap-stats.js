#!/usr/bin/env node
'use strict';
// Counts the objects of a .heapsnapshot by kind (compiled code, strings, closures and objects by
// name...: the rows of bench/conn-memory.js): a full mark-compact pays per object, so this is
// what decides its pause.
//   node bench/heap-stats.js <file.heapsnapshot> [--top=30]
// A snapshot of the service at rest: start it with `node --expose-gc -r bench/lib/profiler.js
// dist/src/main.js` and BENCH_PROF_CTL/BENCH_PROF_DIR set, then write "heap <pid> <file>" into
// the BENCH_PROF_CTL file (bench/lib/profiler.js).

const fs = require('node:fs');
const { aggregate } = require('./lib/heap-snapshot');

function main() {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--'));
  if (!file) {
    process.stderr.write('usage: node bench/heap-stats.js <file.heapsnapshot> [--top=30]\n');
    process.exit(2);
  }
  const top = Number((args.find((a) => a.startsWith('--top=')) || '--top=30').slice(6));
  const byKind = aggregate(JSON.parse(fs.readFileSync(file, 'utf8')));
  let objects = 0;
  let bytes = 0;
  for (const e of byKind.values()) {
    objects += e.count;
    bytes += e.size;
  }
  process.stdout.write(`${file}: ${objects} objects, ${(bytes / 1048576).toFixed(1)} MiB (self sizes, ArrayBuffer contents included)\n`);
  process.stdout.write('   count       KiB  kind\n');
  for (const [kind, e] of [...byKind].sort((a, b) => b[1].count - a[1].count).slice(0, top)) {
    process.stdout.write(`${String(e.count).padStart(8)}  ${(e.size / 1024).toFixed(0).padStart(8)}  ${kind}\n`);
  }
}

main();
