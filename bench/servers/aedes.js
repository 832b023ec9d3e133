'use strict';
// Bare aedes, the baseline: the same aedes version the service embeds, in-memory
// persistence and emitter, no hooks. Nagle off on every accepted socket. Prints one JSON
// line {"msg":"listening","mqtt":<port>,"http":<port>} once ready; the http port serves a
// tiny /metrics with the same event-loop and heap figures as the service's prom-client
// defaults (event-loop lag percentiles reset at each scrape, as prom-client does).
// BENCH_AEDES_COALESCE=1 (the `aedes-coalesced` column): the same, plus the service's
// coalesceWrites on every socket, to show what that one change would give aedes itself.

const net = require('node:net');
const http = require('node:http');
const { monitorEventLoopDelay } = require('node:perf_hooks');
const { Aedes } = require('aedes');

async function main() {
  const host = process.env.HOST || '127.0.0.1';
  const broker = await Aedes.createBroker();
  let handle = broker.handle;
  if (process.env.BENCH_AEDES_COALESCE === '1') {
    const { coalesceWrites } = require('../../dist/src/broker/protocol/harden.js');
    handle = (socket) => {
      coalesceWrites(socket);
      broker.handle(socket);
    };
  }
  const server = net.createServer({ noDelay: true }, handle);
  await new Promise((resolve) => server.listen(Number(process.env.MQTT_PORT || 0), host, resolve));

  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const metrics = http.createServer((req, res) => {
    if (req.url !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    const mem = process.memoryUsage();
    const lines = [
      `nodejs_eventloop_lag_p50_seconds ${lag.percentile(50) / 1e9}`,
      `nodejs_eventloop_lag_p99_seconds ${lag.percentile(99) / 1e9}`,
      `nodejs_eventloop_lag_max_seconds ${lag.max / 1e9}`,
      `nodejs_heap_size_used_bytes ${mem.heapUsed}`,
      `nodejs_heap_size_total_bytes ${mem.heapTotal}`,
      `process_resident_memory_bytes ${mem.rss}`,
      `aedes_connected_clients ${broker.connectedClients}`,
    ];
    lag.reset();
    res.writeHead(200, { 'content-type': 'text/plain' }).end(lines.join('\n') + '\n');
  });
  await new Promise((resolve) => metrics.listen(0, host, resolve));

  process.stdout.write(JSON.stringify({
    level: 30, msg: 'listening', mqtt: server.address().port, http: metrics.address().port, pid: process.pid,
  }) + '\n');

  const stop = () => {
    server.close();
    metrics.close();
    broker.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
