import type { Aedes } from 'aedes';

/**
 * Where aedes keeps its state and routes its messages. Without one the broker uses aedes' own
 * in-memory persistence and emitter (a single node); `src/cluster` provides the Redis one.
 */
export interface BrokerBackend {
  /** passed to aedes as `persistence` and `mq` */
  readonly persistence: unknown;
  readonly mq: unknown;
  /**
   * aedes' broker id. Stored packets are keyed by broker id and a counter that restarts at zero,
   * so it must differ at every start of a node, or a restarted node overwrites its own queue.
   */
  readonly brokerId: string;
  /** null while new sessions can be served; otherwise why not (Redis unreachable...) */
  unavailableReason(): string | null;
  /** called once aedes is listening */
  attach(aedes: Aedes): void;
  /** after aedes.close(): sends what is still pending to Redis, then disconnects; bounded in time */
  close(): Promise<void>;
}
