'use strict';
// Reading V8 heap snapshots (.heapsnapshot JSON): the row each object is counted in, and the
// count and self size per row. Shared by bench/conn-memory.js and bench/heap-stats.js.

/** self size per constructor name from a heap snapshot */
function aggregate(snap) {
  const f = snap.snapshot.meta.node_fields;
  const iSize = f.indexOf('self_size');
  const n = f.length;
  const nodes = snap.nodes;
  const out = new Map();
  for (let i = 0; i < nodes.length; i += n) {
    const name = rowName(snap, i);
    const e = out.get(name) || { size: 0, count: 0 };
    e.size += nodes[i + iSize];
    e.count++;
    out.set(name, e);
  }
  return out;
}

/** the row a snapshot node (at offset i of snap.nodes) is counted in */
function rowName(snap, i) {
  const f = snap.snapshot.meta.node_fields;
  const type = snap.snapshot.meta.node_types[0][snap.nodes[i + f.indexOf('type')]];
  const name = snap.strings[snap.nodes[i + f.indexOf('name')]];
  let row = name;
  if (type === 'string' || type === 'concatenated string' || type === 'sliced string') row = '(strings)';
  else if (type === 'number') row = '(heap numbers)';
  else if (type === 'code') row = '(compiled code)';
  else if (type === 'array') row = `(array) ${name}`;
  else if (type === 'hidden' || type === 'object shape') row = `(${type}) ${name}`;
  else if (type === 'closure') row = `closure ${name || '(anonymous)'}`;
  else if (type === 'native') row = `(native) ${name}`;
  return row.slice(0, 70);
}

module.exports = { aggregate, rowName };
