'use strict';
// Raw MQTT 3.1.1 over net.Socket for the load generator: packets are encoded once with
// mqtt-packet and then copied/patched as bytes; incoming bytes are framed by a small scanner
// that hands (firstByte, buffer, offset, length) to a callback and never builds objects.

const net = require('node:net');
const mqttPacket = require('mqtt-packet');

const PUBACK = 0x40;
const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);

const TYPE = { CONNACK: 2, PUBLISH: 3, PUBACK: 4, SUBACK: 9, UNSUBACK: 11, PINGRESP: 13 };

function encode(packet) {
  return mqttPacket.generate(packet);
}

function connectPacket({ clientId, username, password, keepalive = 60, clean = true }) {
  const p = { cmd: 'connect', protocolId: 'MQTT', protocolVersion: 4, clean, clientId, keepalive };
  if (username !== undefined && username !== null) p.username = username;
  if (password !== undefined && password !== null) p.password = Buffer.from(password);
  return encode(p);
}

function subscribePacket(messageId, filters, qos) {
  return encode({ cmd: 'subscribe', messageId, subscriptions: filters.map((topic) => ({ topic, qos })) });
}

/**
 * A PUBLISH packet as a template: `buf` plus where the packet id and the payload sit, so a
 * sender can copy it and patch the id and a timestamp in place.
 */
function publishTemplate(topic, payloadSize, qos) {
  const payload = Buffer.alloc(payloadSize, 0x61);
  const buf = encode({ cmd: 'publish', topic, payload, qos, messageId: qos > 0 ? 1 : undefined, retain: false, dup: false });
  const topicLen = Buffer.byteLength(topic);
  const remaining = 2 + topicLen + (qos > 0 ? 2 : 0) + payloadSize;
  const hdr = buf.length - remaining;
  const idOffset = qos > 0 ? hdr + 2 + topicLen : -1;
  const payloadOffset = hdr + 2 + topicLen + (qos > 0 ? 2 : 0);
  return { buf, len: buf.length, idOffset, payloadOffset, qos };
}

/** k copies of a template in one buffer (for batched writes) */
function repeat(tpl, k) {
  const out = Buffer.allocUnsafe(tpl.len * k);
  for (let i = 0; i < k; i++) tpl.buf.copy(out, i * tpl.len);
  return out;
}

function pubackBytes(id, out, at) {
  out[at] = PUBACK;
  out[at + 1] = 2;
  out[at + 2] = id >> 8;
  out[at + 3] = id & 0xff;
}

/**
 * Frames a byte stream into MQTT packets. onPacket(b0, buf, off, len): b0 is the fixed
 * header's first byte, [off, off+len) the variable header and payload. Returns onData.
 */
function framer(onPacket) {
  let pending = null;
  return function onData(chunk) {
    let buf = chunk;
    if (pending !== null) {
      buf = Buffer.concat([pending, chunk]);
      pending = null;
    }
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      let i = pos + 1;
      let rl = 0;
      let mul = 1;
      let complete = false;
      for (let k = 0; k < 4 && i < end; k++) {
        const b = buf[i++];
        rl += (b & 0x7f) * mul;
        mul *= 128;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete || i + rl > end) break;
      onPacket(buf[pos], buf, i, rl);
      pos = i + rl;
    }
    if (pos < end) pending = Buffer.from(buf.subarray(pos));
  };
}

/**
 * Opens a TCP connection with Nagle off, sends CONNECT and resolves at CONNACK with
 * { sock, rc, connackMs, conn } where conn.onPacket may be replaced afterwards.
 * Rejects on socket error, on close before CONNACK, or after timeoutMs.
 */
function connect({ host = '127.0.0.1', port, clientId, username, password, keepalive = 60, clean = true, timeoutMs = 60000, connectBuf }) {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const sock = net.connect({ host, port, noDelay: true });
    sock.setNoDelay(true);
    const conn = { sock, onPacket: null, closed: false };
    let settled = false;
    const timer = setTimeout(() => fail(new Error(`CONNACK timeout after ${timeoutMs} ms (${clientId})`)), timeoutMs);
    function fail(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    }
    conn.onPacket = (b0, buf, off) => {
      if (b0 >> 4 !== TYPE.CONNACK || settled) return;
      settled = true;
      clearTimeout(timer);
      conn.onPacket = null;
      resolve({ sock, conn, rc: buf[off + 1], connackMs: performance.now() - t0 });
    };
    sock.on('data', framer((b0, buf, off, len) => {
      if (conn.onPacket !== null) conn.onPacket(b0, buf, off, len);
    }));
    sock.on('error', (err) => {
      conn.error = err;
      fail(err);
    });
    sock.on('close', () => {
      conn.closed = true;
      fail(new Error(`closed before CONNACK (${clientId})`));
    });
    sock.write(connectBuf || connectPacket({ clientId, username, password, keepalive, clean }));
  });
}

/** waits for one packet of `type` on conn (temporarily taking over onPacket) */
function expect(conn, type, timeoutMs = 10000) {
  return new Promise((resolve, reject) => {
    const prev = conn.onPacket;
    const timer = setTimeout(() => {
      conn.onPacket = prev;
      reject(new Error(`timeout waiting for packet type ${type}`));
    }, timeoutMs);
    conn.onPacket = (b0, buf, off, len) => {
      if (b0 >> 4 === type) {
        clearTimeout(timer);
        conn.onPacket = prev;
        resolve(Buffer.from(buf.subarray(off, off + len)));
      } else if (prev) prev(b0, buf, off, len);
    };
  });
}

async function subscribe(conn, filters, qos, messageId = 1) {
  const p = expect(conn, TYPE.SUBACK);
  conn.sock.write(subscribePacket(messageId, filters, qos));
  const suback = await p;
  const codes = [...suback.subarray(2)];
  if (codes.some((c) => c === 0x80)) throw new Error(`SUBACK refused ${filters.join(',')}: ${codes.join(',')}`);
  return codes;
}

/** runs fn over items with at most `limit` in flight; resolves to the results in order */
async function pool(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  async function lane() {
    for (;;) {
      const i = next++;
      if (i >= items.length) return;
      results[i] = await fn(items[i], i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return results;
}

module.exports = {
  TYPE, PINGREQ, DISCONNECT, PUBACK,
  connectPacket, subscribePacket, publishTemplate, repeat, pubackBytes, framer, connect, expect, subscribe, pool,
};
