import { Injectable } from '@nestjs/common';
import { IdentityService } from './identity.service';
import type { Invalidation } from './snapshot';

/**
 * The control plane announces every change that the data plane caches through here. The REST
 * call returns after this node has applied it, so the change holds for the next packet.
 */
@Injectable()
export class ChangeBus {
  private remote?: (change: Invalidation) => Promise<void>;

  constructor(private readonly identity: IdentityService) {}

  /** Another transport (Redis when clustered) that carries changes to the other nodes. */
  connectRemote(send: (change: Invalidation) => Promise<void>): void {
    this.remote = send;
  }

  async publish(change: Invalidation): Promise<void> {
    await this.identity.apply(change);
    if (this.remote) await this.remote(change);
  }

  /** A change received from another node. */
  async receive(change: Invalidation): Promise<void> {
    await this.identity.apply(change);
  }
}
