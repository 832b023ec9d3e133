'use strict';
// Child processes: pinned with taskset where it exists, open-files soft limit raised in the
// spawning shell, IPC to generator workers, /proc readers.

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const net = require('node:net');
const { profileFile } = require('./profile-file');

let tasksetPath;
function taskset() {
  if (tasksetPath === undefined) {
    tasksetPath = null;
    for (const p of ['/usr/bin/taskset', '/bin/taskset', '/usr/sbin/taskset']) {
      if (fs.existsSync(p)) {
        tasksetPath = p;
        break;
      }
    }
  }
  return tasksetPath;
}

const shq = (s) => `'${String(s).replaceAll("'", "'\\''")}'`;

/**
 * spawn `cmd args` through `sh -c 'ulimit -n <nofile>; exec taskset -c <cpus> cmd args'`:
 * exec keeps the pid (so /proc/<pid> is the server itself) and inherited fds (IPC).
 */
function spawnPinned(cmd, args, { cpus, nofile = 20000, ...opts } = {}) {
  const pin = cpus !== undefined && cpus !== null && taskset() ? `${shq(taskset())} -c ${shq(cpus)} ` : '';
  const line = `ulimit -S -n ${nofile} 2>/dev/null || true; exec ${pin}${[cmd, ...args].map(shq).join(' ')}`;
  return spawn('/bin/sh', ['-c', line], opts);
}

/** How many cpus a taskset list names ("0-1", "0,2,4-7"). */
function countCpus(list) {
  let n = 0;
  for (const part of String(list).split(',')) {
    const [from, to = from] = part.split('-').map(Number);
    n += to - from + 1;
  }
  return n;
}

/** resident set size and related fields of a process, in bytes (null once it is gone) */
function procStatus(pid) {
  try {
    const txt = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => {
      const m = txt.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm'));
      return m ? Number(m[1]) * 1024 : null;
    };
    const threads = txt.match(/^Threads:\s+(\d+)/m);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM'), threads: threads ? Number(threads[1]) : null };
  } catch {
    return null;
  }
}

/** cpu seconds (user+system) consumed so far by a process and all its threads */
function procCpuSeconds(pid) {
  try {
    const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
    const hz = 100;
    return (Number(fields[11]) + Number(fields[12])) / hz;
  } catch {
    return null;
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** resolves when something accepts TCP connections on port (bounded by timeoutMs) */
async function waitForPort(port, timeoutMs = 15000) {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    const ok = await new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

/** waits for a child to exit, SIGKILL after graceMs */
function stopChild(child, graceMs = 5000, signal = 'SIGTERM') {
  return new Promise((resolve) => {
    if (!child || child.exitCode !== null || child.signalCode !== null) return resolve();
    const timer = setTimeout(() => {
      try {
        child.kill('SIGKILL');
      } catch { /* gone */ }
    }, graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    try {
      child.kill(signal);
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}

/** a load-generator process (gen/worker.js) pinned to `cpus`, called over IPC */
class Worker {
  constructor({ cpus, label, nodeArgs = [], env = {} }) {
    this.label = label;
    this.child = spawnPinned(process.execPath, [...nodeArgs, path.join(__dirname, '..', 'gen', 'worker.js')], {
      cpus, stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, ...env },
    });
    this.seq = 0;
    this.pending = new Map();
    this.child.on('message', (m) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      clearTimeout(p.timer);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(`${this.label}: ${m.error}`));
    });
    this.child.on('exit', (code, sig) => {
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error(`${this.label} exited (${code ?? sig})`));
      }
      this.pending.clear();
    });
  }

  get pid() {
    return this.child.pid;
  }

  call(cmd, args, timeoutMs = 600000) {
    return new Promise((resolve, reject) => {
      const id = ++this.seq;
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${this.label}: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      this.child.send({ id, cmd, args });
    });
  }

  async stop() {
    try {
      this.child.disconnect();
    } catch { /* already gone */ }
    await stopChild(this.child, 3000);
  }
}

function commandExists(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function tryExec(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (err) {
    return (err.stdout || err.stderr || '').toString().trim() || null;
  }
}

/**
 * Asks a server process that preloads bench/lib/profiler.js for a heap snapshot ('heap') or its
 * process.memoryUsage() ('mem'), both after a full GC when it runs with --expose-gc, through the
 * control file `ctl`; resolves once the process has written `file`.
 */
async function askProfiler(ctl, pid, verb, file, timeoutMs = 60000) {
  fs.writeFileSync(ctl, `${verb} ${pid} ${file}\n`);
  return waitForFile(file, `no ${verb} from process ${pid}`, timeoutMs);
}

/**
 * Starts profiling a process that preloads bench/lib/profiler.js (CPU, or allocations when it
 * runs with BENCH_PROF_ALLOC, passed here as `alloc` too); `stop()` resolves with the profile's
 * path once it is written to `dir`. The process picks the start up within 100 ms.
 */
function startProfile(ctl, dir, pid, tag, alloc = '') {
  const file = profileFile(dir, tag, alloc);
  fs.rmSync(file, { force: true }); // a profile of an earlier run under the same name
  fs.writeFileSync(ctl, `start ${pid} ${tag}\n`);
  return {
    stop(timeoutMs = 60000) {
      fs.writeFileSync(ctl, `stop ${pid}\n`);
      return waitForFile(file, `no profile from process ${pid}`, timeoutMs);
    },
  };
}

async function waitForFile(file, failure, timeoutMs) {
  const until = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > until) throw new Error(`${failure} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return file;
}

module.exports = {
  askProfiler, startProfile, spawnPinned, countCpus, procStatus, procCpuSeconds, freePort, waitForPort, stopChild, Worker, taskset, commandExists, tryExec, shq,
};
