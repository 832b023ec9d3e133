'use strict';
// Shared by the bench (which waits for a profile) and bench/lib/profiler.js (which writes it,
// preloaded into the profiled process): one place decides the name, so the two cannot disagree.

const fs = require('node:fs');
const path = require('node:path');

/** The profile of the window tagged `tag`: CPU, or allocations when `alloc` ('all' or 'live') is set. */
function profileFile(dir, tag, alloc) {
  return path.join(dir, `${tag.replace(/[^A-Za-z0-9._-]/g, '_')}.${alloc ? 'heapprofile' : 'cpuprofile'}`);
}

/** Written under a temporary name, then renamed: a reader waiting for `file` never sees it half-written. */
function writeWhole(file, data) {
  fs.writeFileSync(`${file}.tmp`, data);
  fs.renameSync(`${file}.tmp`, file);
}

module.exports = { profileFile, writeWhole };
