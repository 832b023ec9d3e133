// first: before anything queues a task (see the module)
import './common/next-tick-shape';
import { availableParallelism } from 'node:os';
// bcrypt runs on libuv's pool, one job per core (common/bcrypt-pool.ts): as many threads as
// cores, no more. With surplus threads each bcrypt job wakes another idle one, the kernel moves
// them between cores, and now and then runs one, in spite of nice 19, for a whole tick (4 ms)
// while the event loop it just woke waits: connected clients' p99 during a storm of cold
// connects read 3.1-3.8 ms with 4 threads on 2 cores, 1.5-1.9 ms with 2 (bench/storm-probe.js).
// Set before anything starts the pool; at least 2, so fs and DNS get one on a single core.
process.env.UV_THREADPOOL_SIZE ??= String(Math.max(2, availableParallelism()));

import 'reflect-metadata';
import { ShutdownSignal } from '@nestjs/common';
import pino from 'pino';
import { startApp } from './app.factory';
import { ServerTlsService } from './certificates/server-tls.service';
import { lowerThreadPoolPriority } from './common/threadpool-priority';
import { loadConfig } from './config/config';

// 19, not 10: with bcrypt busy on every core of a 2-core machine, connected clients' p99 read
// 3-4 ms at nice 10 and ~0.6 ms at 19, as quiet (bench/storm-probe.js, bare aedes as the broker)
const THREAD_POOL_NICENESS = 19;

async function main(): Promise<void> {
  const config = loadConfig();
  const log = pino({ level: config.logLevel });
  // bcrypt (on the pool) yields the CPU to the event loop: connected clients before new connects
  const lowered = await lowerThreadPoolPriority(THREAD_POOL_NICENESS);
  log.debug({ threads: lowered, niceness: THREAD_POOL_NICENESS }, 'thread pool priority lowered');
  const running = await startApp(config);
  // SIGTERM/SIGINT: the lifecycle hooks close gracefully (BrokerService: stop accepting, close the
  // clients' connections, flush the persistence), then the process exits 0; a watchdog bounds it
  // Nest's default set, less SIGHUP (below: a reload, not a shutdown)
  const shutdownSignals = Object.values(ShutdownSignal).filter((s) => s !== ShutdownSignal.SIGHUP);
  running.app.enableShutdownHooks(shutdownSignals, { useProcessExit: true });
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      log.warn({ signal, node: config.nodeId }, 'shutting down');
      setTimeout(() => {
        log.error({ timeoutMs: config.shutdownTimeoutMs }, 'graceful shutdown took too long: exiting');
        process.exit(1);
      }, config.shutdownTimeoutMs).unref();
    });
  }
  // SIGHUP reads the server certificate again, as Mosquitto 2 does: TLS_CERT/TLS_KEY renewed in
  // place (a certbot deploy hook: `kill -HUP <pid>`) serve the next handshakes, nobody is
  // disconnected. Logged at warn, with `listening`, so LOG_LEVEL=warn still shows it.
  const serverTls = running.app.get(ServerTlsService);
  process.on('SIGHUP', () => {
    serverTls.reload().then(
      (changed) => log.warn({ changed }, changed ? 'server certificate reloaded' : 'server certificate unchanged'),
      (err: Error) => log.error({ reason: err.message }, 'server certificate not reloaded: the previous one still serves'),
    );
  });
  const { http, mqtt, ws, mqtts, wss } = running.ports;
  // the one line tools wait for; ports are the chosen ones when 0 was asked
  log.warn({ http, mqtt, ws, mqtts, wss, node: config.nodeId, database: config.databaseUrl ? 'postgresql' : 'pglite' }, 'listening');
  if (config.adminTokenGenerated) {
    // printed once, at the start that generated it; it is kept in DATA_DIR/admin-token (mode 0600)
    process.stdout.write(`\nOperator token (ADMIN_TOKEN), shown once: ${config.adminToken}\n\n`);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
