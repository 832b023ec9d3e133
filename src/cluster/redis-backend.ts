import { Logger } from '@nestjs/common';
import type { Aedes } from 'aedes';
import createPersistence from 'aedes-persistence-redis';
import Redis, { RedisOptions } from 'ioredis';
import MQEmitterRedis from 'mqemitter-redis';
import { MAX_TOPIC_LEVELS } from '../broker/protocol';
import { randomBytes } from 'node:crypto';
import type { BrokerBackend } from '../broker/backend';
import { ThrottledLog } from '../common/throttled-log';
import { NodeBus } from './node-bus';
import { redisPatternFor } from './redis-pattern';

/**
 * Everything that needs Redis, loaded only when REDIS_URL is set (the default path never pays
 * for ioredis). Five connections per node:
 *
 * | connection | for | when Redis is away |
 * |---|---|---|
 * | data | aedes-persistence-redis: sessions, queued QoS 1/2, retained, wills | commands wait for it |
 * | mq-pub, mq-sub | mqemitter-redis: every published message, takeovers | commands wait for it |
 * | bus-pub, bus-sub | our request/response between nodes (invalidation, sessions, kick) | fails at once |
 *
 * The waiting connections never drop a command (`maxRetriesPerRequest: null`): a message a
 * client published while Redis restarts is sent when it is back. aedes reads a client's next
 * packets only once the previous ones are done, so a waiting publisher is held back by TCP
 * instead of filling memory. New sessions, which need their stored state, are refused meanwhile.
 */
export interface RedisClusterOptions {
  url: string;
  nodeId: string;
  /** how long start-up waits for Redis */
  connectTimeoutMs?: number;
}

/** Prefix of our own pub/sub channels (aedes' own keys and channels are unprefixed). */
export const CHANNEL_PREFIX = 'mqtt-broker:';

const SETTLE_MS = 2000;
const QUIT_MS = 3000;

/** The URL without its password, for log lines. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'redis (unparsable URL)';
  }
}

/**
 * Tracks whether every connection is usable, and says so in one log line per change of state
 * (ioredis itself reports every failed reconnect attempt).
 */
class Availability {
  private readonly down = new Set<string>();
  private downSince = 0;
  private everUp = false;
  closing = false;
  private readonly waiters: (() => void)[] = [];
  private readonly recovered: (() => void)[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly target: string,
  ) {}

  get available(): boolean {
    return this.down.size === 0;
  }

  /** `confirm` runs after each (re)connect before the connection counts as up (subscriptions restored). */
  track(name: string, conn: Redis, confirm?: () => Promise<unknown>): void {
    this.down.add(name);
    conn.on('error', () => undefined);
    conn.on('ready', () => {
      if (!confirm) return this.markUp(name);
      confirm().then(
        () => this.markUp(name),
        () => undefined, // dropped again: 'reconnecting' says so
      );
    });
    // 'reconnecting', not 'close': a connection closed on purpose (QUIT at shutdown) ends instead
    conn.on('reconnecting', () => this.markDown(name));
  }

  private markDown(name: string): void {
    if (this.closing || this.down.has(name)) return;
    const wasAvailable = this.down.size === 0;
    this.down.add(name);
    if (wasAvailable && this.everUp) {
      this.downSince = Date.now();
      this.logger.error(
        `Redis unreachable (${this.target}): keeping the connections this node has; new MQTT connections ` +
          'are refused (CONNACK 3) and REST changes answer 503 until it is back; messages already accepted wait for it',
      );
    }
  }

  private markUp(name: string): void {
    if (!this.down.delete(name) || this.down.size > 0) return;
    if (this.everUp) {
      this.logger.warn(`Redis reachable again (${this.target}) after ${((Date.now() - this.downSince) / 1000).toFixed(1)} s`);
      for (const cb of this.recovered) cb();
    }
    this.everUp = true;
    for (const w of this.waiters.splice(0)) w();
  }

  whenUp(): Promise<void> {
    return this.available ? Promise.resolve() : new Promise((resolve) => this.waiters.push(resolve));
  }

  onRecovered(cb: () => void): void {
    this.recovered.push(cb);
  }
}

export class RedisCluster {
  readonly backend: BrokerBackend;
  private closed?: Promise<void>;

  private constructor(
    private readonly availability: Availability,
    private readonly data: Redis,
    private readonly mqPub: Redis,
    private readonly mqSub: Redis,
    private readonly busPub: Redis,
    private readonly busSub: Redis,
    readonly bus: NodeBus,
    aedesParts: { persistence: unknown; mq: unknown; brokerId: string },
    logger: Logger,
  ) {
    const errorLog = new ThrottledLog(logger);
    this.backend = {
      ...aedesParts,
      unavailableReason: () => (availability.available ? null : 'redis-unavailable'),
      attach: (aedes: Aedes) => {
        // aedes reports persistence failures on the broker; without a listener they would throw
        (aedes as unknown as NodeJS.EventEmitter).on('error', (err: Error) => errorLog.error(`broker error: ${err.message}`));
      },
      close: () => this.close(),
    };
  }

  static async connect(opts: RedisClusterOptions, logger: Logger): Promise<RedisCluster> {
    const target = redactRedisUrl(opts.url);
    const availability = new Availability(logger, target);
    const base: RedisOptions = {
      // reconnect forever, every 250 ms: the sooner every node is back, the smaller the window in
      // which a message published on one node misses the subscriptions another has not restored yet
      retryStrategy: () => 250,
      connectTimeout: 5000,
    };
    const waiting: RedisOptions = { ...base, maxRetriesPerRequest: null, enableOfflineQueue: true };
    const name = (role: string) => `mqtt-${opts.nodeId}-${role}`.replace(/[^A-Za-z0-9._-]/g, '_');
    const data = new Redis(opts.url, { ...waiting, connectionName: name('data') });
    const mqPub = new Redis(opts.url, { ...waiting, connectionName: name('mq-pub') });
    const mqSub = new Redis(opts.url, { ...waiting, connectionName: name('mq-sub') });
    const busPub = new Redis(opts.url, {
      ...base,
      maxRetriesPerRequest: 0,
      enableOfflineQueue: false,
      connectionName: name('bus-pub'),
    });
    const busSub = new Redis(opts.url, { ...waiting, connectionName: name('bus-sub') });
    const all = [data, mqPub, mqSub, busPub, busSub];
    availability.track('data', data);
    availability.track('mq-pub', mqPub);
    // a subscriber counts as up once its subscriptions are back: PING is answered after them
    availability.track('mq-sub', mqSub, () => mqSub.ping());
    availability.track('bus-pub', busPub);
    availability.track('bus-sub', busSub, () => busSub.ping());

    const timeoutMs = opts.connectTimeoutMs ?? 15000;
    let timer: NodeJS.Timeout | undefined;
    const up = await Promise.race([
      availability.whenUp().then(() => true),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    if (!up) {
      availability.closing = true;
      for (const c of all) c.disconnect();
      throw new Error(`Redis unreachable at ${target} (no answer within ${timeoutMs} ms)`);
    }

    const mq = MQEmitterRedis({ pubConn: mqPub, subConn: mqSub, concurrency: 100, matchEmptyLevels: true,
      // mqemitter's own option, passed through but missing from mqemitter-redis' types
      ...{ maxWords: MAX_TOPIC_LEVELS + 1 } });
    // errors of its connections are reported by Availability; without a listener they would throw
    (mq as unknown as { state: NodeJS.EventEmitter }).state.on('error', () => undefined);
    (mq as unknown as { _subTopic: (topic: string) => string })._subTopic = redisPatternFor;
    const persistence = createPersistence({ conn: data, maxTopicLevels: MAX_TOPIC_LEVELS + 1 });

    const bus = new NodeBus(busPub, busSub, opts.nodeId, CHANNEL_PREFIX);
    await bus.start();

    const brokerId = `${opts.nodeId}.${randomBytes(4).toString('hex')}`;
    return new RedisCluster(availability, data, mqPub, mqSub, busPub, busSub, bus, { persistence, mq, brokerId }, logger);
  }


  get available(): boolean {
    return this.availability.available;
  }

  /** Called after an outage, once every connection is back. */
  onRecovered(cb: () => void): void {
    this.availability.onRecovered(cb);
  }

  /** For /health/ready: every connection up, and Redis answering. */
  async check(): Promise<void> {
    if (!this.availability.available) throw new Error('unreachable');
    await this.busPub.ping();
  }

  /**
   * After aedes.close() (which quits the emitter's connections): lets the writes still in flight
   * reach Redis (QUIT is answered after every command sent before it), then closes the rest.
   * Bounded in time; idempotent.
   */
  close(): Promise<void> {
    this.closed ??= (async () => {
      await waitIdle([this.data, this.mqPub], Date.now() + SETTLE_MS);
      this.availability.closing = true;
      this.bus.stop();
      await quit(this.data, QUIT_MS);
      await Promise.all([this.busPub, this.busSub, this.mqPub, this.mqSub].map((c) => quit(c, QUIT_MS)));
    })();
    return this.closed;
  }
}

function pendingCommands(conn: Redis): number {
  const offline = (conn as unknown as { offlineQueue?: { length: number } }).offlineQueue;
  return conn.commandQueue.length + (offline?.length ?? 0);
}

/** Until no command has been pending for a few checks in a row (chained writes issue theirs in turn), or the deadline. */
async function waitIdle(conns: Redis[], deadline: number): Promise<void> {
  let quiet = 0;
  while (Date.now() < deadline) {
    quiet = conns.some((c) => pendingCommands(c) > 0) ? 0 : quiet + 1;
    if (quiet >= 3) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** QUIT is answered after every command sent before it; past the deadline, or if Redis is away, just disconnect. */
async function quit(conn: Redis, ms: number): Promise<void> {
  if (conn.status === 'end') return;
  if (conn.status !== 'ready') {
    conn.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    conn.quit().catch(() => undefined),
    new Promise((resolve) => (timer = setTimeout(resolve, ms))),
  ]);
  clearTimeout(timer);
  if ((conn.status as string) !== 'end') conn.disconnect();
}
