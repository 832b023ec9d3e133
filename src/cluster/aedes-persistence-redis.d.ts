// aedes-persistence-redis ships no types; only what src/cluster/redis-backend.ts uses.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis';

  interface RedisPersistenceOptions {
    /** an existing connection (its options decide retries and queueing) */
    conn?: Redis;
    /** how many queued messages one reconnect delivers (default 1000) */
    maxSessionDelivery?: number;
    packetTTL?: (packet: unknown) => number;
    /** trie depth (patched in, see patches/aedes-persistence-redis+11.2.2.patch) */
    maxTopicLevels?: number;
  }

  interface RedisPersistence {
    setup(broker: unknown): Promise<void>;
    destroy(): Promise<void>;
  }

  function createPersistence(options?: RedisPersistenceOptions): RedisPersistence;
  export = createPersistence;
}
