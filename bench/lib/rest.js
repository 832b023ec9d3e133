'use strict';
// Minimal JSON client for the service's REST API (keep-alive, 127.0.0.1 only).

const http = require('node:http');

class Rest {
  constructor({ port, token, maxSockets = 32 }) {
    this.port = port;
    this.token = token;
    this.agent = new http.Agent({ keepAlive: true, maxSockets });
  }

  request(method, path, body, { timeoutMs = 60000, raw = false } = {}) {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? null : Buffer.from(JSON.stringify(body));
      const headers = { accept: raw ? '*/*' : 'application/json' };
      if (this.token) headers.authorization = `Bearer ${this.token}`;
      if (data) {
        headers['content-type'] = 'application/json';
        headers['content-length'] = data.length;
      }
      const t0 = performance.now();
      const req = http.request({ host: '127.0.0.1', port: this.port, method, path, headers, agent: this.agent }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const ms = performance.now() - t0;
          const text = Buffer.concat(chunks).toString('utf8');
          let json = null;
          if (!raw && text) {
            try {
              json = JSON.parse(text);
            } catch { /* not json */ }
          }
          resolve({ status: res.statusCode, body: raw ? text : json, text, ms });
        });
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.on('error', reject);
      if (data) req.write(data);
      req.end();
    });
  }

  /** like request, but throws unless the status is one of `ok` */
  async must(method, path, body, ok = [200, 201, 204]) {
    const r = await this.request(method, path, body);
    if (!ok.includes(r.status)) {
      throw new Error(`${method} ${path} -> ${r.status}: ${r.text.slice(0, 400)}`);
    }
    return r;
  }

  async metrics() {
    const r = await this.request('GET', '/metrics', undefined, { raw: true, timeoutMs: 10000 });
    if (r.status !== 200) return null;
    return parseProm(r.body);
  }

  close() {
    this.agent.destroy();
  }
}

/** Prometheus text → Map(name → sum over label sets); also name{labels} keys as given */
function parseProm(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (!m) continue;
    const v = Number(m[3]);
    if (m[2]) out.set(m[1] + m[2], v);
    out.set(m[1], (m[2] ? out.get(m[1]) ?? 0 : 0) + v);
  }
  return out;
}

module.exports = { Rest, parseProm };
