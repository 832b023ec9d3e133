'use strict';
// Preloaded (`node -r bench/lib/profiler.js ...`) into a server process when the bench runs
// with --profile: CPU-profiles exactly the measured windows, without touching the service's
// code and without signals (Nest's shutdown hooks own SIGUSR2). The bench writes
// "start <pid> <tag>" or "stop <pid>" into BENCH_PROF_CTL (every profiled process reads the
// same file; each obeys only lines with its own pid); profiles go to BENCH_PROF_DIR as
// <tag>.cpuprofile (Chrome DevTools / speedscope format). "heap <pid> <file>" writes a heap
// snapshot and "mem <pid> <file>" a JSON of process.memoryUsage(), both after a full GC when
// the process runs with --expose-gc (bench/conn-memory.js). With BENCH_PROF_ALLOC=all the
// measured windows are sampled for allocations instead (<tag>.heapprofile: bytes allocated per
// function, garbage included: what the scavenger pays for); with BENCH_PROF_ALLOC=live only what
// is still alive when the window ends (what the window left on the heap).

const fs = require('node:fs');
const inspector = require('node:inspector');
const { profileFile, writeWhole } = require('./profile-file');

const ctl = process.env.BENCH_PROF_CTL;
const dir = process.env.BENCH_PROF_DIR;
// '' (CPU), 'all' (every allocation, garbage included) or 'live' (what is still alive at the stop)
const alloc = process.env.BENCH_PROF_ALLOC || '';

if (ctl && dir) {
  const session = new inspector.Session();
  session.connect();
  let current = null;
  let last = '';
  const post = (method, params) => new Promise((resolve, reject) => {
    session.post(method, params || {}, (err, res) => (err ? reject(err) : resolve(res)));
  });
  const timer = setInterval(async () => {
    let cmd;
    try {
      cmd = fs.readFileSync(ctl, 'utf8').trim();
    } catch {
      return;
    }
    if (cmd === last) return;
    last = cmd;
    const [verb, pid, tag] = cmd.split(' ');
    if (Number(pid) !== process.pid) return;
    try {
      if (verb === 'start' && current === null && tag) {
        current = tag;
        if (alloc) {
          // a sample every 4 KiB allocated on average
          const all = alloc === 'all';
          await post('HeapProfiler.enable');
          await post('HeapProfiler.startSampling', {
            samplingInterval: 4096, includeObjectsCollectedByMajorGC: all, includeObjectsCollectedByMinorGC: all,
          });
        } else {
          await post('Profiler.enable');
          await post('Profiler.setSamplingInterval', { interval: 250 });
          await post('Profiler.start');
        }
      } else if (verb === 'heap' || verb === 'mem') {
        if (typeof global.gc === 'function') {
          global.gc();
          global.gc();
        }
        if (verb === 'heap') {
          require('node:v8').writeHeapSnapshot(`${tag}.tmp`);
          fs.renameSync(`${tag}.tmp`, tag);
        } else writeWhole(tag, JSON.stringify(process.memoryUsage()));
      } else if (verb === 'stop' && current !== null) {
        const { profile } = await post(alloc ? 'HeapProfiler.stopSampling' : 'Profiler.stop');
        fs.mkdirSync(dir, { recursive: true });
        writeWhole(profileFile(dir, current, alloc), JSON.stringify(profile));
        current = null;
      }
    } catch (err) {
      process.stderr.write(`bench profiler: ${err.message}\n`);
    }
  }, 100);
  timer.unref();
}
