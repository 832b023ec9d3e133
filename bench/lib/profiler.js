'use strict';
// Preloaded (`node -r bench/lib/profiler.js ...`) into a server process when the bench runs
// with --profile: CPU-profiles exactly the measured windows, without touching the service's
// code and without signals (Nest's shutdown hooks own SIGUSR2). The bench writes
// "start <tag>" or "stop" into BENCH_PROF_CTL; profiles go to BENCH_PROF_DIR as
// <tag>.cpuprofile (Chrome DevTools / speedscope format).

const fs = require('node:fs');
const path = require('node:path');
const inspector = require('node:inspector');

const ctl = process.env.BENCH_PROF_CTL;
const dir = process.env.BENCH_PROF_DIR;

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
    try {
      if (cmd.startsWith('start ') && current === null) {
        current = cmd.slice(6).replace(/[^A-Za-z0-9._-]/g, '_');
        await post('Profiler.enable');
        await post('Profiler.setSamplingInterval', { interval: 250 });
        await post('Profiler.start');
      } else if (cmd.startsWith('stop') && current !== null) {
        const { profile } = await post('Profiler.stop');
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `${current}.cpuprofile`), JSON.stringify(profile));
        current = null;
      }
    } catch (err) {
      process.stderr.write(`bench profiler: ${err.message}\n`);
    }
  }, 100);
  timer.unref();
}
