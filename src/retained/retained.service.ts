import { Injectable, OnModuleInit } from '@nestjs/common';
import type { Readable } from 'node:stream';
import type { Tenant } from '../generated/prisma/client';
import { BrokerService } from '../broker/broker.service';
import { Mountpoint } from '../broker/tenancy/mountpoint';
import { notFound } from '../common/errors';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { encodePayload } from '../publish/payload';
import type { PayloadEncoding } from '../publish/publish.dto';
import { smallestByKey } from '../common/smallest';
import { TenantsService } from '../tenants/tenants.service';

export interface RetainedView {
  topic: string;
  payload: string;
  encoding: PayloadEncoding;
  qos: number;
}

interface StoredPacket {
  topic: string;
  payload: Buffer;
  qos: number;
}

/** The part of aedes' persistence (memory or Redis, both promise-based in aedes 1.x) used here. */
interface RetainedStore {
  createRetainedStreamCombi(patterns: string[]): Readable;
  storeRetained(packet: { cmd: 'publish'; topic: string; payload: Buffer; qos: 0; retain: true; dup: false }): Promise<void>;
}

/**
 * Retained messages live in aedes' persistence under their routed (mounted) topics; this reads
 * and deletes them through the persistence itself, so it works alike on one node and on Redis.
 */
@Injectable()
export class RetainedService implements OnModuleInit {
  constructor(
    private readonly broker: BrokerService,
    private readonly tenants: TenantsService,
  ) {}

  onModuleInit(): void {
    // DESIGN.md: deleting a tenant removes its retained messages
    this.tenants.addLifecycleHook({ onTenantDeleted: (tenant) => this.clear(tenant.id) });
  }

  private get store(): RetainedStore {
    return (this.broker.aedes as unknown as { persistence: RetainedStore }).persistence;
  }

  async list(tenant: Tenant, q: { filter?: string; limit?: number; cursor?: string }): Promise<Page<RetainedView>> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const after = decodeCursor(q.cursor);
    const mp = new Mountpoint(tenant.id);
    const matches = await this.collect(mp, [mp.mount(q.filter ?? '#')], after);
    const page = smallestByKey(matches, limit + 1, (m) => m.topic);
    return toPage(page, limit, (m) => m.topic, (m) => m);
  }

  async get(tenant: Tenant, topic: string): Promise<RetainedView> {
    const mp = new Mountpoint(tenant.id);
    // a topic name is a filter that matches itself alone
    const [found] = await this.collect(mp, [mp.mount(topic)]);
    if (!found) throw notFound('retained message');
    return found;
  }

  /** As an empty retained PUBLISH would ([MQTT-3.3.1-10]), but without delivering anything. */
  async remove(tenant: Tenant, topic: string): Promise<void> {
    await this.get(tenant, topic);
    await this.delete(new Mountpoint(tenant.id).mount(topic));
  }

  /** Every retained message of the tenant, `$` topics included. */
  async clear(tenantId: string): Promise<void> {
    const mp = new Mountpoint(tenantId);
    const routed: string[] = [];
    for await (const packet of this.store.createRetainedStreamCombi([mp.prefix + '#', mp.dollarPrefix + '#']) as AsyncIterable<StoredPacket>) {
      if (mp.owns(packet.topic)) routed.push(packet.topic);
    }
    for (const topic of routed) await this.delete(topic);
  }

  private delete(routed: string): Promise<void> {
    return this.store.storeRetained({ cmd: 'publish', topic: routed, payload: Buffer.alloc(0), qos: 0, retain: true, dup: false });
  }

  private async collect(mp: Mountpoint, patterns: string[], after?: string): Promise<RetainedView[]> {
    const out: RetainedView[] = [];
    const seen = new Set<string>();
    for await (const packet of this.store.createRetainedStreamCombi(patterns) as AsyncIterable<StoredPacket>) {
      if (!mp.owns(packet.topic) || seen.has(packet.topic)) continue;
      const topic = mp.unmount(packet.topic);
      if (after !== undefined && topic <= after) continue;
      seen.add(packet.topic);
      out.push({ topic, ...encodePayload(Buffer.from(packet.payload)), qos: packet.qos ?? 0 });
    }
    return out;
  }
}
