import { Inject, Injectable, Logger, OnModuleInit } from '@nestjs/common';
import { BrokerService } from '../broker/broker.service';
import { ChangeBus } from '../broker/identity/change-bus';
import { IdentityService } from '../broker/identity/identity.service';
import { Invalidation, TENANT_SOURCE, TenantSource } from '../broker/identity/snapshot';
import { AppError } from '../common/errors';
import { APP_CONFIG, AppConfig } from '../config/config';
import type { BusHandler, Gathered } from './node-bus';
// type only: ioredis and the aedes Redis modules are loaded when REDIS_URL is set, never before
import type { RedisCluster } from './redis-backend';

/** How long a change waits for the other nodes to confirm they applied it. */
const INVALIDATION_TIMEOUT_MS = 1000;

export const clusterUnavailable = (): AppError =>
  new AppError('service-unavailable', 'the cluster bus (Redis) is unreachable; retry when it is back');

/**
 * The node's place in a cluster, when REDIS_URL is set: aedes' persistence and emitter on Redis,
 * cache invalidations carried to every node, and requests answered by every node (sessions).
 * Without REDIS_URL it does nothing and loads nothing.
 */
@Injectable()
export class ClusterService implements OnModuleInit {
  private readonly logger = new Logger('Cluster');
  private redis?: RedisCluster;
  private readonly handlers = new Map<string, BusHandler>();
  /** changes this node could not send (Redis away): sent when it is back */
  private outbox: Invalidation[] = [];

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly broker: BrokerService,
    private readonly changes: ChangeBus,
    private readonly identity: IdentityService,
    @Inject(TENANT_SOURCE) private readonly source: TenantSource,
  ) {}

  get enabled(): boolean {
    return this.config.redisUrl !== undefined;
  }

  get nodeId(): string {
    return this.config.nodeId;
  }

  /** false when clustered and Redis is unreachable */
  get available(): boolean {
    return !this.enabled || (this.redis?.available ?? false);
  }

  /** Answers `method` when another node (or this one) asks every node. */
  handle(method: string, handler: BusHandler): void {
    this.handlers.set(method, handler);
    this.redis?.bus.handle(method, handler);
  }

  /** Asks every node, this one included; 503 (AppError) when Redis is unreachable. */
  async onEveryNode<T>(method: string, args: unknown, timeoutMs: number): Promise<Gathered<T>> {
    const redis = this.redis;
    if (!redis || !redis.available) throw clusterUnavailable();
    try {
      return await redis.bus.broadcast<T>(method, args, timeoutMs);
    } catch {
      throw clusterUnavailable();
    }
  }

  async onModuleInit(): Promise<void> {
    if (!this.config.redisUrl) return;
    const { RedisCluster } = await import('./redis-backend.js');
    const redis = await RedisCluster.connect({ url: this.config.redisUrl, nodeId: this.config.nodeId }, this.logger);
    this.redis = redis;
    for (const [method, handler] of this.handlers) redis.bus.handle(method, handler);
    redis.bus.handle('invalidate', async (change, from) => {
      // the node that made the change applied it before sending it
      if (from !== this.config.nodeId) await this.changes.receive(change as Invalidation);
    });
    // the broker closes it at shutdown, after its clients: the Redis connections go last
    this.broker.useBackend(redis.backend);
    this.broker.addReadinessCheck('redis', () => redis.check());
    this.changes.connectRemote((change) => this.relay(change));
    redis.onRecovered(() => void this.afterOutage());
  }

  /**
   * Sends a change to every node and waits (bounded) until they applied it, so the REST call that
   * made it returns once it holds cluster-wide.
   */
  private async relay(change: Invalidation): Promise<void> {
    let gathered: Gathered<unknown>;
    try {
      gathered = await this.onEveryNode('invalidate', change, INVALIDATION_TIMEOUT_MS);
    } catch {
      if (this.outbox.length === 0) this.logger.warn('cannot reach the other nodes: changes are kept until Redis is back');
      this.outbox.push(change);
      return;
    }
    const failed = gathered.answers.filter((a) => !a.ok);
    if (failed.length || !gathered.complete) {
      const who = failed.map((a) => `${a.node}: ${a.error}`).join('; ');
      this.logger.warn(
        `change ${change.kind} of tenant ${change.tenantId} not confirmed by every node` +
          (gathered.complete ? '' : ` (some did not answer within ${INVALIDATION_TIMEOUT_MS} ms)`) +
          (who ? ` (${who})` : ''),
      );
    }
  }

  /**
   * After an outage this node may have missed changes made on others, and others may have missed
   * the ones it kept: send those, then reload what it caches from the database.
   */
  private async afterOutage(): Promise<void> {
    const pending = this.outbox;
    this.outbox = [];
    for (const change of pending) await this.relay(change);
    try {
      await this.resync();
    } catch (err) {
      this.logger.error(`reloading cached tenants after the Redis outage failed: ${(err as Error).message}`);
    }
  }

  /** Reloads every cached tenant as if each part had been announced as changed. */
  private async resync(): Promise<void> {
    for (const tenant of [...this.identity.cachedTenants()]) {
      const tenantId = tenant.id;
      await this.changes.receive({ kind: 'tenant', tenantId });
      if (tenant.deleted) continue;
      await this.changes.receive({ kind: 'rules', tenantId });
      await this.changes.receive({ kind: 'certificates', tenantId });
      const snapshot = await this.source.loadTenant({ id: tenantId });
      if (!snapshot) continue;
      const fresh = new Map(snapshot.devices.map((d) => [d.name, d]));
      for (const name of new Set([...tenant.devices.keys(), ...fresh.keys()])) {
        const before = tenant.devices.get(name);
        const after = fresh.get(name);
        if (before?.id === after?.id && before?.enabled === after?.enabled && before?.passwordHash === after?.passwordHash) {
          continue;
        }
        const rekeyed = before !== undefined && (before.id !== after?.id || before.passwordHash !== after?.passwordHash);
        await this.changes.receive({ kind: 'device', tenantId, name, disconnect: rekeyed });
      }
    }
  }
}
