import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { Prisma } from '../generated/prisma/client';
import type { AuditEvent } from '../generated/prisma/client';
import { APP_CONFIG, AppConfig } from '../config/config';
import { decodeCursor, DEFAULT_PAGE_SIZE, Page, toPage } from '../common/pagination';
import { badField } from '../common/errors';
import { PrismaService } from '../database/prisma.service';

/** One entry of the audit trail. `actor`: `operator`, `api-key:<id>` (see actorOf), `mqtt` or `broker`. */
export interface AuditRecord {
  tenantId: string;
  type: string;
  actor: string;
  /** the resource, relative to the tenant: `devices/laptop`, `acls/<id>`...; null for the tenant itself */
  target?: string | null;
  detail?: Record<string, unknown>;
  /** defaults to now */
  at?: Date;
}

export interface AuditEventView {
  id: string;
  at: string;
  type: string;
  actor: string;
  target: string | null;
  detail: unknown;
}

export interface AuditQuery {
  type?: string;
  device?: string;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: string;
}

/** Events waiting for their batch: beyond this, new ones are dropped (and counted). */
export const AUDIT_BUFFER_MAX = 10_000;
const BATCH = 500;
/** How often the buffer is looked at. */
export const AUDIT_TICK_MS = 250;
/** Ticks an event waits at most while a burst goes on (a steady trickle has no quiet tick). */
export const AUDIT_MAX_WAIT_TICKS = 20;
/** Written at once from this size on, burst or not, long before the buffer is full. */
export const AUDIT_FLUSH_AT = AUDIT_BUFFER_MAX / 2;
const RETENTION_SWEEP_MS = 60 * 60 * 1000;

/**
 * A batch as one statement with one parameter, the rows as a JSON array, run on the driver
 * (PrismaService.execute). Prisma's createMany builds its query through its query compiler on
 * the event loop, which for 500 rows blocked MQTT traffic for tens of milliseconds (the connect
 * storm's event-loop lag); even a raw statement costs ~10x the driver's CPU through Prisma.
 * `at` travels as an ISO string in UTC, which is how Prisma stores DateTime in timestamp(3).
 */
const INSERT_BATCH = `INSERT INTO "AuditEvent" ("tenantId", "at", "type", "actor", "target", "detail")
SELECT r."tenantId", r."at", r."type", r."actor", r."target", r."detail"
FROM jsonb_to_recordset($1::jsonb) AS r("tenantId" text, "at" timestamp(3), "type" text, "actor" text, "target" text, "detail" jsonb)`;

export function auditEventView(e: AuditEvent): AuditEventView {
  return { id: e.id.toString(), at: e.at.toISOString(), type: e.type, actor: e.actor, target: e.target, detail: e.detail };
}

/**
 * The audit trail (AuditEvent table). `record()` only appends to a bounded in-memory buffer,
 * written in batches (one INSERT per batch), so connection events cost the MQTT path no
 * database round trip; when the database is slow or down, the buffer fills and further events
 * are dropped and counted (`droppedEvents`, metric `audit_events_dropped_total`). `write()`
 * stores one event before returning: REST changes use it. Events older than
 * AUDIT_RETENTION_DAYS are deleted hourly.
 *
 * The buffer is written once a tick (250 ms) passes with nothing recorded: a reconnect storm's
 * events wait for the storm to end instead of being inserted in the middle of it. On embedded
 * PGlite an INSERT runs on the broker's own thread (~8 ms for a batch of 500), which took CPU
 * and event-loop time from the CONNECTs still coming in. An event waits at most 5 s
 * (AUDIT_MAX_WAIT_TICKS), and half a full buffer is written at once.
 */
@Injectable()
export class AuditService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('Audit');
  private buffer: Prisma.AuditEventCreateManyInput[] = [];
  private chain: Promise<void> = Promise.resolve();
  private flushTimer?: NodeJS.Timeout;
  private retentionTimer?: NodeJS.Timeout;
  private failing = false;
  private recordedThisTick = 0;
  private ticksWaited = 0;
  /** events lost: buffer full, or a batch the database refused */
  droppedEvents = 0;

  constructor(
    private readonly prisma: PrismaService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    this.flushTimer = setInterval(() => this.tick(), AUDIT_TICK_MS);
    this.flushTimer.unref();
    this.retentionTimer = setInterval(() => void this.enforceRetention().catch(() => undefined), RETENTION_SWEEP_MS);
    this.retentionTimer.unref();
    void this.enforceRetention().catch((err: Error) => this.logger.warn(`retention sweep failed: ${err.message}`));
  }

  async beforeApplicationShutdown(): Promise<void> {
    clearInterval(this.flushTimer);
    clearInterval(this.retentionTimer);
    // what connections closing during the shutdown record is written too, while the database answers
    do await this.flush();
    while (this.buffer.length > 0 && !this.failing);
  }

  onApplicationShutdown(): void {
    clearInterval(this.flushTimer);
    clearInterval(this.retentionTimer);
  }

  /** Queues an event, written after the next quiet tick (5 s at most). Never waits, never throws. */
  record(event: AuditRecord): void {
    if (this.buffer.length >= AUDIT_BUFFER_MAX) {
      this.droppedEvents++;
      return;
    }
    this.buffer.push(toRow(event));
    this.recordedThisTick++;
  }

  /** Every AUDIT_TICK_MS: writes the buffer after a quiet tick, a long wait, or once it is large. */
  tick(): void {
    const quiet = this.recordedThisTick === 0;
    this.recordedThisTick = 0;
    if (this.buffer.length === 0) return;
    this.ticksWaited++;
    // the database refused the last batch: try again once a second, not every tick
    if (this.failing && this.ticksWaited % 4 !== 0) return;
    if (quiet || this.ticksWaited >= AUDIT_MAX_WAIT_TICKS || this.buffer.length >= AUDIT_FLUSH_AT) {
      this.ticksWaited = 0;
      void this.flush();
    }
  }

  /** Writes an event now (REST changes: the trail holds it when the response is sent). */
  async write(event: AuditRecord): Promise<void> {
    await this.prisma.db.auditEvent.create({ data: toRow(event) });
  }

  /** Writes what is queued (resolves when every event recorded before the call was written or dropped). */
  flush(): Promise<void> {
    this.chain = this.chain.then(() => this.drain());
    return this.chain;
  }

  /**
   * Writes the events queued when it starts, not those recorded meanwhile: chasing the tail during
   * a connect storm turned one batch a second into dozens of tiny INSERTs a second.
   */
  private async drain(): Promise<void> {
    let due = this.buffer.length;
    while (due > 0) {
      const batch = this.buffer.splice(0, Math.min(BATCH, due));
      due -= batch.length;
      try {
        await this.prisma.execute(INSERT_BATCH, [JSON.stringify(batch)]);
        if (this.failing) this.logger.log('audit events are being written again');
        this.failing = false;
      } catch (err) {
        // the database is down or slow: keep what fits, count the rest, try again next tick
        const room = AUDIT_BUFFER_MAX - this.buffer.length;
        const kept = batch.slice(0, Math.max(0, room));
        this.droppedEvents += batch.length - kept.length;
        this.buffer = kept.concat(this.buffer);
        if (!this.failing) this.logger.warn(`audit events not written, retrying: ${(err as Error).message}`);
        this.failing = true;
        return;
      }
    }
  }

  async enforceRetention(now = new Date()): Promise<number> {
    const cutoff = new Date(now.getTime() - this.config.auditRetentionDays * 24 * 60 * 60 * 1000);
    const { count } = await this.prisma.db.auditEvent.deleteMany({ where: { at: { lt: cutoff } } });
    return count;
  }

  /** A tenant's events, newest first (by id: insertion order), filtered. */
  async list(tenantId: string, q: AuditQuery): Promise<Page<AuditEventView>> {
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    const after = decodeCursor(q.cursor);
    if (after !== undefined && !/^[0-9]{1,19}$/.test(after)) throw badField('cursor', 'is not a cursor this API returned');
    const where: Prisma.AuditEventWhereInput = { tenantId };
    if (after !== undefined) where.id = { lt: BigInt(after) };
    if (q.type !== undefined) {
      // `device.*` selects every type of that family
      where.type = q.type.endsWith('.*') ? { startsWith: q.type.slice(0, -1) } : q.type;
    }
    if (q.device !== undefined) {
      where.OR = [{ target: `devices/${q.device}` }, { target: { startsWith: `devices/${q.device}/` } }];
    }
    if (q.since !== undefined || q.until !== undefined) {
      where.at = {
        ...(q.since !== undefined ? { gte: new Date(q.since) } : {}),
        ...(q.until !== undefined ? { lt: new Date(q.until) } : {}),
      };
    }
    const rows = await this.prisma.db.auditEvent.findMany({ where, orderBy: { id: 'desc' }, take: limit + 1 });
    return toPage(rows, limit, (e) => e.id.toString(), auditEventView);
  }
}

function toRow(event: AuditRecord): Prisma.AuditEventCreateManyInput {
  return {
    tenantId: event.tenantId,
    type: event.type,
    actor: event.actor,
    target: event.target ?? null,
    detail: (event.detail ?? {}) as Prisma.InputJsonValue,
    at: event.at ?? new Date(),
  };
}
