import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { BrokerService } from '../broker/broker.service';
import { IdentityService } from '../broker/identity/identity.service';
import type { TenantRuntime } from '../broker/identity/tenant-runtime';
import { APP_CONFIG, AppConfig } from '../config/config';

/** The `$SYS` topics each tenant sees (DESIGN.md), with the figure each one carries. */
export const SYS_TOPICS: readonly [string, (tenant: TenantRuntime) => number][] = [
  ['$SYS/broker/clients/connected', (t) => t.clients.size],
  ['$SYS/broker/messages/received', (t) => t.counters.messagesIn],
  ['$SYS/broker/messages/sent', (t) => t.counters.messagesOut],
  ['$SYS/broker/subscriptions/count', subscriptionCount],
];

function subscriptionCount(tenant: TenantRuntime): number {
  let n = 0;
  for (const client of tenant.clients) {
    for (const _ in client.subscriptions) n++;
  }
  return n;
}

/**
 * Publishes every tenant's own figures inside its mountpoint (`$SYS/...` of the device is routed
 * as `$<tenantId>/$SYS/...`), retained, every SYS_INTERVAL seconds, for the tenants that have a
 * client connected to this node. Devices may read them without an ACL rule (hooks.ts); nobody
 * may publish there. The figures are this node's.
 */
@Injectable()
export class SysTopicsPublisher implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger('SYS');
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly broker: BrokerService,
    private readonly identity: IdentityService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.timer = setInterval(() => this.publishAll(), this.config.sysIntervalSeconds * 1000);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    clearInterval(this.timer);
  }

  publishAll(): void {
    if (this.broker.ports === undefined) return; // listeners not started yet, or shut down
    let aedes;
    try {
      aedes = this.broker.aedes;
    } catch {
      return;
    }
    for (const tenant of this.identity.cachedTenants()) {
      if (tenant.clients.size === 0) continue;
      for (const [topic, figure] of SYS_TOPICS) {
        const packet = {
          cmd: 'publish' as const,
          topic: tenant.mountpoint.mount(topic),
          payload: Buffer.from(String(figure(tenant))),
          qos: 0 as const,
          retain: true,
          dup: false,
        };
        aedes.publish(packet, (err) => {
          if (err) this.logger.warn(`$SYS publish failed for ${tenant.slug}: ${err.message}`);
        });
      }
    }
  }
}
