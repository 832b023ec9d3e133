'use strict';
// Load generator process. Driven by the orchestrator (bench/run.js) over IPC: each message
// { id, cmd, args } runs one role and answers { id, ok, result | error }.
// Everything on the wire is pre-encoded bytes and a byte scanner (lib/raw-mqtt.js): no
// per-message objects, so one generator core outruns one broker core.

const { Hist } = require('../lib/hist');
const { procCpuSeconds } = require('../lib/proc');
const {
  TYPE, PINGREQ, DISCONNECT, publishTemplate, subscribePacket, repeat, pubackBytes, connect, subscribe, pool,
} = require('../lib/raw-mqtt');

const epochNow = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const fmt = (pattern, i) => (pattern === undefined || pattern === null ? pattern : String(pattern).replaceAll('{i}', String(i)));

function cpuMeter() {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  return () => {
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / (performance.now() - t0);
  };
}

/** cpu used by another process (the server under test) over the same window, in cores */
function pidCpuMeter(pid) {
  if (!pid) return () => null;
  const s0 = procCpuSeconds(pid);
  const t0 = performance.now();
  return () => {
    const s1 = procCpuSeconds(pid);
    return s0 === null || s1 === null ? null : (s1 - s0) / ((performance.now() - t0) / 1000);
  };
}

/** connect and require CONNACK 0 */
async function connectOk(opts) {
  const r = await connect(opts);
  if (r.rc !== 0) {
    r.sock.destroy();
    throw new Error(`CONNACK ${r.rc} for ${opts.clientId} (${opts.username ?? 'anonymous'})`);
  }
  return r;
}

function clientOpts(a, clientId) {
  return {
    host: a.host, port: a.port, clientId,
    username: a.auth ? a.auth.username : undefined,
    password: a.auth ? a.auth.password : undefined,
    keepalive: a.keepalive ?? 60,
  };
}

/** runs `after` once per 'data' event, after the framer has delivered every packet of it */
function onChunkEnd(sock, after) {
  sock.on('data', after);
}

function publishTopicLength(buf, off) {
  return buf.readUInt16BE(off);
}

/** collects PUBACKs for QoS 1 PUBLISHes received in one chunk and writes them in one go */
function acker(sock) {
  let ids = new Uint16Array(1024);
  let n = 0;
  return {
    add(id) {
      if (n === ids.length) {
        const bigger = new Uint16Array(ids.length * 2);
        bigger.set(ids);
        ids = bigger;
      }
      ids[n++] = id;
    },
    flush() {
      if (n === 0) return;
      const out = Buffer.allocUnsafe(n * 4);
      for (let i = 0; i < n; i++) pubackBytes(ids[i], out, i * 4);
      n = 0;
      if (!sock.destroyed) sock.write(out);
    },
  };
}

function destroyAll(list) {
  for (const c of list) if (c && c.sock && !c.sock.destroyed) c.sock.destroy();
}

// ---------------------------------------------------------------------------------------
// fan-in: nPub publishers on their own topics, one subscriber on prefix/+.
// Closed loop: at most `window` messages between "sent" and "delivered" (QoS 0), plus at
// most `inflight` unacknowledged per publisher at QoS 1, so the broker's queues stay bounded
// and what is measured is its delivery rate, not our ability to overfill its buffers.
async function fanin(a) {
  const qos = a.qos;
  const nPub = a.nPub;
  const window = a.window ?? 2000;
  const inflight = a.inflight ?? 20;
  const batchMax = qos === 0 ? 32 : inflight;
  const minBatch = qos === 0 ? 8 : Math.max(1, Math.floor(inflight / 4));
  const conns = [];
  try {
    const sub = await connectOk(clientOpts(a, `${a.clientPrefix}-sub`));
    conns.push(sub);
    await subscribe(sub.conn, [`${a.topicPrefix}/+`], qos);
    const pubs = await pool([...Array(nPub).keys()], 25, async (i) => {
      const c = await connectOk(clientOpts(a, `${a.clientPrefix}-p${i}`));
      conns.push(c);
      const tpl = publishTemplate(`${a.topicPrefix}/${i}`, a.payload ?? 64, qos);
      return { sock: c.sock, conn: c.conn, tpl, batch: repeat(tpl, batchMax), inflight: 0, nextId: 1 };
    });

    let sent = 0;
    let recv = 0;
    let acked = 0;
    let lost = 0;
    let running = true;
    let rr = 0;

    const ack = acker(sub.sock);
    sub.conn.onPacket = (b0, buf, off) => {
      if (b0 >> 4 !== TYPE.PUBLISH) return;
      recv++;
      if ((b0 & 0x06) !== 0) ack.add(buf.readUInt16BE(off + 2 + publishTopicLength(buf, off)));
    };
    onChunkEnd(sub.sock, () => {
      ack.flush();
      pump();
    });
    for (const p of pubs) {
      p.conn.onPacket = (b0) => {
        if (b0 >> 4 === TYPE.PUBACK) {
          p.inflight--;
          acked++;
        }
      };
      if (qos > 0) onChunkEnd(p.sock, pump);
    }

    function pump() {
      if (!running) return;
      let budget = window - (sent - recv);
      for (let g = 0; g < nPub && budget >= minBatch; g++) {
        const p = pubs[rr];
        rr = rr + 1 === nPub ? 0 : rr + 1;
        let k = Math.min(budget, batchMax);
        if (qos === 0) {
          p.sock.write(k === batchMax ? p.batch : p.batch.subarray(0, k * p.tpl.len));
        } else {
          k = Math.min(k, inflight - p.inflight);
          if (k < minBatch) continue;
          const out = Buffer.allocUnsafe(k * p.tpl.len);
          p.batch.copy(out, 0, 0, k * p.tpl.len);
          for (let j = 0; j < k; j++) {
            out.writeUInt16BE(p.nextId, j * p.tpl.len + p.tpl.idOffset);
            p.nextId = p.nextId === 65535 ? 1 : p.nextId + 1;
          }
          p.inflight += k;
          p.sock.write(out);
        }
        sent += k;
        budget -= k;
      }
    }

    // A broker may drop QoS 0 messages (allowed): without this the window would leak shut.
    let lastRecv = -1;
    let lastProgress = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (recv !== lastRecv) {
        lastRecv = recv;
        lastProgress = now;
      } else if (now - lastProgress > 300 && sent > recv && qos === 0) {
        lost += sent - recv;
        sent = recv;
        lastProgress = now;
        pump();
      }
    }, 50);

    pump();
    await sleep(a.warmupMs);
    const r0 = recv;
    const s0 = sent;
    const cpu = cpuMeter();
    const scpu = pidCpuMeter(a.serverPid);
    const t0 = performance.now();
    await sleep(a.durationMs);
    const dt = (performance.now() - t0) / 1000;
    const r1 = recv;
    const s1 = sent;
    const genCpu = cpu();
    const serverCpu = scpu();
    running = false;
    clearInterval(watchdog);
    return {
      delivered: (r1 - r0) / dt,
      published: (s1 - s0) / dt,
      seconds: dt,
      genCpu,
      serverCpu,
      lostQos0: lost,
      stalled: performance.now() - lastProgress > 1000,
      acked,
    };
  } finally {
    destroyAll(conns);
  }
}

// ---------------------------------------------------------------------------------------
// fan-out: one publisher, nSub subscribers of one topic. Closed loop on total deliveries
// (at most `window` messages per subscriber outstanding). At QoS 1 the run ends with a
// drain: every acknowledged message must reach every subscriber.
async function fanout(a) {
  const qos = a.qos;
  const nSub = a.nSub;
  const window = a.window ?? 50;
  const inflight = a.inflight ?? 100;
  const batchMax = qos === 0 ? 16 : Math.min(32, inflight);
  const minBatch = qos === 0 ? 4 : 4;
  const topic = `${a.topicPrefix}/fo`;
  const conns = [];
  try {
    const subs = await pool([...Array(nSub).keys()], 50, async (i) => {
      const c = await connectOk(clientOpts(a, `${a.clientPrefix}-s${i}`));
      conns.push(c);
      await subscribe(c.conn, [topic], qos);
      return { sock: c.sock, conn: c.conn, recv: 0 };
    });
    const pc = await connectOk(clientOpts(a, `${a.clientPrefix}-pub`));
    conns.push(pc);
    const tpl = publishTemplate(topic, a.payload ?? 64, qos);
    const batch = repeat(tpl, batchMax);

    let sent = 0;
    let acked = 0;
    let total = 0;
    let pubInflight = 0;
    let nextId = 1;
    let running = true;
    let lostEstimate = 0;

    function pump() {
      if (!running) return;
      let budget = Math.floor(window - (sent * nSub - total) / nSub);
      if (qos > 0) budget = Math.min(budget, inflight - pubInflight);
      while (budget >= minBatch) {
        const k = Math.min(budget, batchMax);
        if (qos === 0) {
          pc.sock.write(k === batchMax ? batch : batch.subarray(0, k * tpl.len));
        } else {
          const out = Buffer.allocUnsafe(k * tpl.len);
          batch.copy(out, 0, 0, k * tpl.len);
          for (let j = 0; j < k; j++) {
            out.writeUInt16BE(nextId, j * tpl.len + tpl.idOffset);
            nextId = nextId === 65535 ? 1 : nextId + 1;
          }
          pubInflight += k;
          pc.sock.write(out);
        }
        sent += k;
        budget -= k;
      }
    }

    for (const s of subs) {
      const ack = acker(s.sock);
      s.conn.onPacket = (b0, buf, off) => {
        if (b0 >> 4 !== TYPE.PUBLISH) return;
        s.recv++;
        total++;
        if ((b0 & 0x06) !== 0) ack.add(buf.readUInt16BE(off + 2 + publishTopicLength(buf, off)));
      };
      onChunkEnd(s.sock, () => {
        ack.flush();
        pump();
      });
    }
    pc.conn.onPacket = (b0) => {
      if (b0 >> 4 === TYPE.PUBACK) {
        pubInflight--;
        acked++;
      }
    };
    onChunkEnd(pc.sock, pump);

    let lastTotal = -1;
    let lastProgress = performance.now();
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (total !== lastTotal) {
        lastTotal = total;
        lastProgress = now;
      } else if (now - lastProgress > 300 && qos === 0 && sent * nSub > total) {
        lostEstimate += sent * nSub - total;
        total = sent * nSub;
        lastProgress = now;
        pump();
      }
    }, 50);

    pump();
    await sleep(a.warmupMs);
    const t0 = performance.now();
    const d0 = total;
    const p0 = sent;
    const cpu = cpuMeter();
    const scpu = pidCpuMeter(a.serverPid);
    await sleep(a.durationMs);
    const dt = (performance.now() - t0) / 1000;
    const d1 = total;
    const p1 = sent;
    const genCpu = cpu();
    const serverCpu = scpu();
    running = false;
    clearInterval(watchdog);

    const result = {
      deliveries: (d1 - d0) / dt,
      published: (p1 - p0) / dt,
      seconds: dt,
      genCpu,
      serverCpu,
      lostQos0Estimate: lostEstimate,
    };
    if (qos > 0) {
      // drain: everything sent must be acknowledged and delivered to every subscriber
      const deadline = performance.now() + (a.drainMs ?? 15000);
      while (performance.now() < deadline) {
        if (acked >= sent && subs.every((s) => s.recv >= sent)) break;
        await sleep(50);
      }
      let lost = 0;
      let dup = 0;
      for (const s of subs) {
        if (s.recv < sent) lost += sent - s.recv;
        if (s.recv > sent) dup += s.recv - sent;
      }
      Object.assign(result, { sentTotal: sent, ackedTotal: acked, lost, duplicates: dup });
    }
    return result;
  } finally {
    destroyAll(conns);
  }
}

// ---------------------------------------------------------------------------------------
// rate: publish at a fixed aggregate rate with a send timestamp in the payload, and record
// publish→receive latency. mode 'wildcard': n publishers + 1 subscriber on prefix/+;
// mode 'self': n clients, each subscribed to its own topic and publishing to it.
const rateSessions = new Map();

async function rateStart(a) {
  const name = a.name ?? 'rate';
  if (rateSessions.has(name)) throw new Error(`rate session ${name} already running`);
  const qos = a.qos;
  const n = a.n;
  const conns = [];
  const st = {
    conns, hist: new Hist(), interval: new Hist(), sent: 0, recv: 0, intervalSent: 0, intervalRecv: 0,
    samplesT: a.keepSamples ? new Float64Array(a.maxSamples ?? 2_000_000) : null,
    samplesL: a.keepSamples ? new Float64Array(a.maxSamples ?? 2_000_000) : null,
    nSamples: 0, skipped: 0, ticker: null, pubs: [], errors: 0, intervalStart: epochNow(),
  };
  const onPublish = (b0, buf, off) => {
    const tl = buf.readUInt16BE(off);
    const pOff = off + 2 + tl + ((b0 & 0x06) !== 0 ? 2 : 0);
    const now = performance.now();
    const lat = now - buf.readDoubleLE(pOff);
    st.recv++;
    st.intervalRecv++;
    if (now >= st.recordFrom) {
      st.hist.record(lat);
      st.interval.record(lat);
      if (st.samplesT !== null && st.nSamples < st.samplesT.length) {
        st.samplesT[st.nSamples] = performance.timeOrigin + now;
        st.samplesL[st.nSamples++] = lat;
      }
    }
  };
  const attach = (c, acks) => {
    c.conn.onPacket = (b0, buf, off) => {
      const t = b0 >> 4;
      if (t === TYPE.PUBLISH) {
        onPublish(b0, buf, off);
        if ((b0 & 0x06) !== 0) acks.add(buf.readUInt16BE(off + 2 + buf.readUInt16BE(off)));
      }
    };
    onChunkEnd(c.sock, () => acks.flush());
    c.sock.on('close', () => {
      if (!st.stopping) st.errors++;
    });
  };
  try {
    if (a.mode === 'wildcard') {
      const sub = await connectOk(clientOpts(a, `${a.clientPrefix}-sub`));
      conns.push(sub);
      await subscribe(sub.conn, [`${a.topicPrefix}/+`], qos);
      attach(sub, acker(sub.sock));
    }
    st.pubs = await pool([...Array(n).keys()], 25, async (i) => {
      const c = await connectOk(clientOpts(a, `${a.clientPrefix}-${i}`));
      conns.push(c);
      const topic = `${a.topicPrefix}/${i}`;
      if (a.mode === 'self') {
        await subscribe(c.conn, [topic], qos);
        attach(c, acker(c.sock));
      } else {
        c.sock.on('close', () => {
          if (!st.stopping) st.errors++;
        });
      }
      return { sock: c.sock, tpl: publishTemplate(topic, Math.max(8, a.payload ?? 64), qos), nextId: 1, due: 0 };
    });
  } catch (err) {
    destroyAll(conns);
    throw err;
  }

  const rate = a.rate;
  const t0 = performance.now();
  st.recordFrom = t0 + (a.warmupMs ?? 0);
  st.throttled = 0;
  let rr = 0;
  const maxBurst = Math.max(1, Math.ceil(rate / 20)); // never more than 50 ms worth at once
  // A broker that falls behind stops reading (TCP backpressure): messages would then wait in
  // our socket buffers and their latency would measure our queue. Over this many unsent bytes
  // a publisher skips its turn (counted as throttled) instead.
  const maxUnsent = a.maxUnsentBytes ?? 256 * 1024;
  st.ticker = setInterval(() => {
    const now = performance.now();
    let due = Math.floor(((now - t0) * rate) / 1000) - st.sent - st.skipped;
    if (due <= 0) return;
    if (due > maxBurst) {
      st.skipped += due - maxBurst; // we fell behind (our loop or the machine): do not burst
      due = maxBurst;
    }
    const pubs = st.pubs;
    for (let i = 0; i < due; i++) {
      pubs[rr].due++;
      rr = rr + 1 === pubs.length ? 0 : rr + 1;
    }
    for (const p of pubs) {
      if (p.due === 0) continue;
      const k = p.due;
      p.due = 0;
      if (p.sock.writableLength > maxUnsent) {
        st.throttled += k;
        continue;
      }
      const len = p.tpl.len;
      const out = Buffer.allocUnsafe(k * len);
      for (let j = 0; j < k; j++) {
        const at = j * len;
        p.tpl.buf.copy(out, at);
        out.writeDoubleLE(now, at + p.tpl.payloadOffset);
        if (qos > 0) {
          out.writeUInt16BE(p.nextId, at + p.tpl.idOffset);
          p.nextId = p.nextId === 65535 ? 1 : p.nextId + 1;
        }
      }
      if (!p.sock.destroyed) p.sock.write(out);
    }
    st.sent += due;
    st.intervalSent += due;
  }, a.tickMs ?? 1);
  rateSessions.set(name, st);
  return { connected: conns.length };
}

function rateStats(a) {
  const st = rateSessions.get(a.name ?? 'rate');
  if (!st) throw new Error('no rate session');
  const h = new Hist();
  const from = a.from ?? 0;
  const to = a.to ?? Infinity;
  for (let i = 0; i < st.nSamples; i++) {
    const t = st.samplesT[i];
    if (t >= from && t <= to) h.record(st.samplesL[i]);
  }
  return h.summary();
}

function rateInterval(a) {
  const st = rateSessions.get(a.name ?? 'rate');
  if (!st) throw new Error('no rate session');
  const now = epochNow();
  const r = {
    at: now, seconds: (now - st.intervalStart) / 1000, latency: st.interval.summary(),
    sent: st.intervalSent, received: st.intervalRecv, errors: st.errors, throttled: st.throttled - (st.throttledReported ?? 0),
  };
  st.throttledReported = st.throttled;
  st.interval = new Hist();
  st.intervalSent = 0;
  st.intervalRecv = 0;
  st.intervalStart = now;
  return r;
}

async function rateStop(a) {
  const name = a.name ?? 'rate';
  const st = rateSessions.get(name);
  if (!st) throw new Error('no rate session');
  clearInterval(st.ticker);
  await sleep(a.drainMs ?? 300);
  st.stopping = true;
  destroyAll(st.conns);
  rateSessions.delete(name);
  return {
    latency: st.hist.summary(), sent: st.sent, received: st.recv, skipped: st.skipped, throttled: st.throttled, errors: st.errors,
    worst: st.samplesT === null ? undefined : worstSamples(st, a.worst ?? 20),
  };
}

/** the n slowest samples as [epoch ms, latency ms], in time order: to line up with a server's GC trace */
function worstSamples(st, n) {
  const idx = Array.from({ length: st.nSamples }, (_, i) => i).sort((x, y) => st.samplesL[y] - st.samplesL[x]).slice(0, n);
  return idx.sort((x, y) => x - y).map((i) => [Math.round(st.samplesT[i]), +st.samplesL[i].toFixed(3)]);
}

// ---------------------------------------------------------------------------------------
// hold: open n connections (connect storm, idle connections, live sessions) and keep them
// alive with PINGREQ every keepalive/2; groups are closed by name.
const groups = new Map();

function startPinger(g) {
  if (!(g.keepalive > 0)) return;
  const periodMs = (g.keepalive * 1000) / 2;
  const stepMs = 200;
  let cursor = 0;
  g.pinger = setInterval(() => {
    const list = g.socks;
    if (list.length === 0) return;
    const perStep = Math.ceil((list.length * stepMs) / periodMs);
    for (let i = 0; i < perStep; i++) {
      if (cursor >= list.length) cursor = 0;
      const s = list[cursor++];
      if (!s.destroyed) s.write(PINGREQ);
    }
  }, stepMs);
}

async function holdOpen(a) {
  const name = a.group;
  let g = groups.get(name);
  if (!g) {
    g = { socks: [], keepalive: a.keepalive ?? 60, pinger: null, closedUnexpectedly: 0, closing: false };
    groups.set(name, g);
    startPinger(g);
  }
  const hist = new Hist();
  const rcCounts = {};
  const errors = {};
  let ok = 0;
  let failed = 0;
  const first = a.first ?? 0;
  const idx = [...Array(a.n).keys()].map((i) => i + first);
  const cpu = cpuMeter();
  const scpu = pidCpuMeter(a.serverPid);
  const start = epochNow();
  const t0 = performance.now();
  await pool(idx, a.concurrency ?? 100, async (i) => {
    try {
      const r = await connect({
        host: a.host, port: a.port, clientId: fmt(a.clientPattern, i), username: fmt(a.userPattern, i),
        password: fmt(a.passPattern, i), keepalive: g.keepalive, clean: a.clean ?? true, timeoutMs: a.timeoutMs ?? 120000,
      });
      rcCounts[r.rc] = (rcCounts[r.rc] ?? 0) + 1;
      if (r.rc !== 0) {
        failed++;
        r.sock.destroy();
        return;
      }
      ok++;
      hist.record(r.connackMs);
      r.conn.onPacket = () => {};
      r.sock.on('close', () => {
        if (!g.closing) g.closedUnexpectedly++;
      });
      g.socks.push(r.sock);
    } catch (err) {
      failed++;
      const key = String(err.code ?? err.message).replace(/\(.*\)/, '').trim();
      errors[key] = (errors[key] ?? 0) + 1;
    }
  });
  const seconds = (performance.now() - t0) / 1000;
  const serverCpu = scpu();
  return {
    ok, failed, rcCounts, errors, start, end: epochNow(), seconds,
    connectsPerSec: ok / seconds, connack: hist.summary(), genCpu: cpu(), held: g.socks.length,
    serverCpu, serverCpuPerConnectUs: serverCpu !== null && ok ? (serverCpu * seconds * 1e6) / ok : null,
  };
}

async function holdClose(a) {
  const g = groups.get(a.group);
  if (!g) return { closed: 0 };
  g.closing = true;
  clearInterval(g.pinger);
  const closes = g.socks.map((s) => new Promise((resolve) => {
    if (s.destroyed) return resolve();
    s.once('close', resolve);
    if (a.graceful !== false) s.end(DISCONNECT);
    else s.destroy();
  }));
  const timeout = sleep(a.timeoutMs ?? 20000).then(() => 'timeout');
  const r = await Promise.race([Promise.all(closes), timeout]);
  const n = g.socks.length;
  for (const s of g.socks) s.destroy();
  groups.delete(a.group);
  return { closed: n, timedOut: r === 'timeout', closedUnexpectedly: g.closedUnexpectedly };
}

function holdInfo(a) {
  const g = groups.get(a.group);
  if (!g) return null;
  return { held: g.socks.filter((s) => !s.destroyed).length, closedUnexpectedly: g.closedUnexpectedly };
}

// ---------------------------------------------------------------------------------------
// churn: clients that connect, subscribe, publish one QoS 1 message, live `lifeMs` and go
// (half with DISCONNECT, half by dropping the socket): the session turnover of a soak.
const churn = { timer: null, live: new Set(), stats: null };

function churnStart(a) {
  if (churn.timer) throw new Error('churn already running');
  churn.stats = { connects: 0, failed: 0, graceful: 0, abrupt: 0, errors: {} };
  let k = 0;
  const period = 1000 / a.rate;
  const tpl = publishTemplate(`${a.topicPrefix}/x`, 64, 1);
  churn.timer = setInterval(() => {
    if (churn.live.size >= (a.maxLive ?? 1000)) return;
    const i = k++;
    const clientId = `${a.clientPrefix}-${i}`;
    connect({ host: a.host, port: a.port, clientId, username: a.auth?.username, password: a.auth?.password, keepalive: 30 })
      .then(async (r) => {
        if (r.rc !== 0) throw new Error(`CONNACK ${r.rc}`);
        churn.stats.connects++;
        churn.live.add(r.sock);
        r.sock.on('close', () => churn.live.delete(r.sock));
        r.conn.onPacket = () => {};
        r.sock.write(subscribePacket(1, [`${a.topicPrefix}/${i}/#`], 1));
        r.sock.write(tpl.buf);
        setTimeout(() => {
          if (r.sock.destroyed) return;
          if (i % 2 === 0) {
            churn.stats.graceful++;
            r.sock.end(DISCONNECT);
          } else {
            churn.stats.abrupt++;
            r.sock.destroy();
          }
        }, a.lifeMs ?? 3000);
      })
      .catch((err) => {
        churn.stats.failed++;
        const key = String(err.code ?? err.message).replace(/\(.*\)/, '').trim();
        churn.stats.errors[key] = (churn.stats.errors[key] ?? 0) + 1;
      });
  }, period);
  return { started: true };
}

async function churnStop() {
  clearInterval(churn.timer);
  churn.timer = null;
  for (const s of churn.live) s.destroy();
  churn.live.clear();
  await sleep(100);
  return churn.stats;
}

// ---------------------------------------------------------------------------------------
// bcrypt: compares per second on this process's cores, the ceiling for a cold connect storm
async function bcryptRate(a) {
  const bcrypt = require('bcrypt');
  const hash = await bcrypt.hash('bench-password', a.cost ?? 10);
  let done = 0;
  const t0 = performance.now();
  const until = t0 + (a.ms ?? 3000);
  await Promise.all(Array.from({ length: a.concurrency ?? 4 }, async () => {
    while (performance.now() < until) {
      await bcrypt.compare('bench-password', hash);
      done++;
    }
  }));
  return { comparesPerSec: done / ((performance.now() - t0) / 1000), threadpool: process.env.UV_THREADPOOL_SIZE ?? '4 (default)' };
}

// ---------------------------------------------------------------------------------------
const handlers = {
  fanin, fanout, rateStart, rateStats, rateInterval, rateStop, holdOpen, holdClose, holdInfo,
  churnStart, churnStop, bcryptRate,
  ping: () => ({ pid: process.pid, fdLimit: null }),
};

process.on('message', async (m) => {
  const h = handlers[m.cmd];
  try {
    if (!h) throw new Error(`unknown command ${m.cmd}`);
    const result = await h(m.args ?? {});
    process.send({ id: m.id, ok: true, result });
  } catch (err) {
    process.send({ id: m.id, ok: false, error: err && err.stack ? err.stack : String(err) });
  }
});
process.on('disconnect', () => process.exit(0));
