import { Injectable } from '@nestjs/common';
import type { Tenant } from '../generated/prisma/client';
import { BrokerService } from '../broker/broker.service';
import { Mountpoint } from '../broker/tenancy/mountpoint';
import { AppError, badField } from '../common/errors';
import { effectiveLimits } from '../tenants/limits';
import { decodePayload } from './payload';
import type { PublishDto } from './publish.dto';

@Injectable()
export class PublishService {
  constructor(private readonly broker: BrokerService) {}

  /**
   * Publishes into the tenant's topic space as a device's PUBLISH would arrive: mounted, then
   * through aedes (retained store, subscribers, offline queues of persistent sessions). Resolves
   * once aedes has handed the message on.
   */
  async publish(tenant: Tenant, dto: PublishDto): Promise<void> {
    const payload = decodePayload(dto.payload, dto.encoding ?? 'utf8');
    const max = effectiveLimits(tenant.limits).maxPayloadBytes;
    if (payload.length > max) {
      throw new AppError('payload-too-large', `payload: ${payload.length} bytes, the tenant allows ${max}`, [
        { field: 'payload', message: `is larger than the tenant's maxPayloadBytes (${max})` },
      ]);
    }
    const packet = {
      cmd: 'publish' as const,
      topic: new Mountpoint(tenant.id).mount(dto.topic),
      payload,
      qos: dto.qos ?? 0,
      retain: dto.retain ?? false,
      dup: false,
    };
    await new Promise<void>((resolve, reject) => {
      // no client: nothing to authorize (the REST caller holds the tenant's rights) or count as a device's
      this.broker.aedes.publish(packet, (err?: Error | null) => {
        if (!err) return resolve();
        // aedes refuses what it cannot route (too many levels): the topic was not acceptable
        reject(/level/i.test(err.message) ? badField('topic', err.message) : err);
      });
    });
  }
}
