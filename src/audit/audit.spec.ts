import type { AppConfig } from '../config/config';
import type { PrismaService } from '../database/prisma.service';
import { AUDIT_BUFFER_MAX, AUDIT_FLUSH_AT, AUDIT_MAX_WAIT_TICKS, AuditService } from './audit.service';
import { auditDetail, describeRestChange } from './rest-change';
import { ConnectionAudit } from './connection-audit';
import type { BrokerService } from '../broker/broker.service';
import type { HookEvents } from '../broker/hooks';
import type { BrokerClient, TenantSession } from '../broker/session';

describe('describeRestChange', () => {
  const d = (method: string, route: string, params: Record<string, string> = {}, response: unknown = undefined) =>
    describeRestChange(method, route, { slug: 'acme', ...params }, response);

  it.each([
    ['POST', '/api/v1/tenants', 'tenant.create', null, {}, { slug: 'acme', name: 'ACME' }],
    ['PATCH', '/api/v1/tenants/:slug', 'tenant.update', null, {}, undefined],
    ['DELETE', '/api/v1/tenants/:slug', 'tenant.delete', null, {}, undefined],
    ['POST', '/api/v1/tenants/:slug/devices', 'device.create', 'devices/d1', {}, { name: 'd1', enabled: true }],
    ['PATCH', '/api/v1/tenants/:slug/devices/:name', 'device.update', 'devices/d1', { name: 'd1' }, undefined],
    ['DELETE', '/api/v1/tenants/:slug/devices/:name', 'device.delete', 'devices/d1', { name: 'd1' }, undefined],
    ['POST', '/api/v1/tenants/:slug/devices/:name/password', 'device.password', 'devices/d1', { name: 'd1' }, undefined],
    ['POST', '/api/v1/tenants/:slug/api-keys', 'api-key.create', 'api-keys/k1', {}, { id: 'k1', name: 'ci', key: 'secret' }],
    ['POST', '/api/v1/tenants/:slug/devices/:name/certificates/:id/revoke', 'certificate.revoke', 'devices/d1/certificates/c9', { name: 'd1', id: 'c9' }, undefined],
    ['DELETE', '/api/v1/tenants/:slug/retained/:topic', 'retained.delete', 'retained/a/b', { topic: 'a/b' }, undefined],
    ['POST', '/api/v1/tenants/:slug/publish', 'tenant.publish', null, {}, undefined],
  ])('%s %s -> %s', (method, route, type, target, params, response) => {
    expect(d(method, route, params, response)).toEqual({ type, target });
  });

  it('ignores routes outside the API', () => {
    expect(describeRestChange('POST', '/health/ready', {}, undefined)).toBeNull();
  });

  it('keeps secrets and payloads out of the detail', () => {
    expect(auditDetail({ name: 'd1', password: 'p', key: 'k', csr: 'pem', payload: 'hello', qos: 1 })).toEqual({
      name: 'd1',
      password: '[redacted]',
      key: '[redacted]',
      csr: '[redacted]',
      payloadLength: 5,
      qos: 1,
    });
    expect(auditDetail(undefined)).toEqual({});
  });
});

/** `insert` sees each batch's rows, as the one INSERT statement gets them (a JSON array) */
function auditService(insert: (args: { data: unknown[] }) => Promise<unknown>) {
  const execute = (sql: string, [rows]: string[]) => {
    expect(sql).toMatch(/^INSERT INTO "AuditEvent"/);
    return insert({ data: JSON.parse(rows) as unknown[] });
  };
  const prisma = { execute } as unknown as PrismaService;
  return new AuditService(prisma, { auditRetentionDays: 30 } as AppConfig);
}
const event = (i: number) => ({ tenantId: 't', type: 'connect', actor: 'mqtt', detail: { i } });

describe('AuditService buffer', () => {
  it('writes what was recorded in batches', async () => {
    const batches: number[] = [];
    const audit = auditService(async ({ data }) => batches.push(data.length));
    for (let i = 0; i < 1200; i++) audit.record(event(i));
    await audit.flush();
    expect(batches).toEqual([500, 500, 200]);
    expect(audit.droppedEvents).toBe(0);
  });

  it('leaves what is recorded during a write to the next flush (one batch a tick, not a chase)', async () => {
    const batches: number[] = [];
    let audit: AuditService | undefined = undefined;
    audit = auditService(async ({ data }) => {
      batches.push(data.length);
      if (batches.length === 1) for (let i = 0; i < 5; i++) audit?.record(event(i));
    });
    for (let i = 0; i < 10; i++) audit.record(event(i));
    await audit.flush();
    expect(batches).toEqual([10]);
    await audit.flush();
    expect(batches).toEqual([10, 5]);
  });

  it('bounds the buffer while the database is down, counts what it drops, and catches up', async () => {
    let up = false;
    let written = 0;
    const audit = auditService(async ({ data }) => {
      if (!up) throw new Error('connection refused');
      written += data.length;
    });
    for (let i = 0; i < AUDIT_BUFFER_MAX + 250; i++) audit.record(event(i));
    expect(audit.droppedEvents).toBe(250);
    await audit.flush(); // fails: everything is kept for the next try
    expect(audit.droppedEvents).toBe(250);
    audit.record(event(0));
    expect(audit.droppedEvents).toBe(251);
    up = true;
    await audit.flush();
    expect(written).toBe(AUDIT_BUFFER_MAX);
  });
});

describe('AuditService timing', () => {
  function setup() {
    const batches: number[] = [];
    const audit = auditService(async ({ data }) => batches.push(data.length));
    const flush = jest.spyOn(audit, 'flush');
    return { audit, batches, flush };
  }

  it('holds events while they keep coming (a storm), and writes them after the first quiet tick', async () => {
    const { audit, batches, flush } = setup();
    for (let t = 0; t < 5; t++) {
      for (let i = 0; i < 100; i++) audit.record(event(i));
      audit.tick();
    }
    expect(flush).not.toHaveBeenCalled();
    audit.tick();
    expect(flush).toHaveBeenCalledTimes(1);
    await flush.mock.results[0].value;
    expect(batches).toEqual([500]);
  });

  it('writes after AUDIT_MAX_WAIT_TICKS when the events never stop', () => {
    const { audit, flush } = setup();
    for (let t = 1; t < AUDIT_MAX_WAIT_TICKS; t++) {
      audit.record(event(t));
      audit.tick();
    }
    expect(flush).not.toHaveBeenCalled();
    audit.record(event(0));
    audit.tick();
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('writes at once from AUDIT_FLUSH_AT events, storm or not', () => {
    const { audit, flush } = setup();
    for (let i = 0; i < AUDIT_FLUSH_AT - 1; i++) audit.record(event(i));
    audit.tick();
    expect(flush).not.toHaveBeenCalled();
    audit.record(event(0));
    audit.tick();
    expect(flush).toHaveBeenCalledTimes(1);
  });

  it('does nothing on a tick with nothing to write', () => {
    const { audit, flush } = setup();
    audit.tick();
    expect(flush).not.toHaveBeenCalled();
  });
});

describe('ConnectionAudit', () => {
  function setup() {
    const recorded: { type: string; target?: string | null; detail?: Record<string, unknown> }[] = [];
    const audit = { record: (e: (typeof recorded)[number]) => recorded.push(e) } as unknown as AuditService;
    const listeners: Partial<HookEvents>[] = [];
    const broker = { events: { listeners }, whenStarted: () => undefined } as unknown as BrokerService;
    new ConnectionAudit(audit, broker);
    const session = (registered: boolean, kickedFor: string | null = null) =>
      ({ registered, kickedFor, closeError: null, tenant: { id: 't1' }, deviceName: 'd1', clientId: 'c1', connectedAt: Date.now(), messagesIn: 2, messagesOut: 3 }) as unknown as TenantSession;
    const close = (client: object, s: TenantSession) => listeners.forEach((l) => l.sessionClosed?.(client as BrokerClient, s));
    return { recorded, session, close };
  }

  it('records the close of a registered session, as a kick when the broker closed it', () => {
    const { recorded, session, close } = setup();
    close({ _disconnected: true }, session(true));
    close({}, session(true, 'device changed'));
    expect(recorded.map((e) => [e.type, e.target, e.detail?.reason, e.detail?.messagesIn])).toEqual([
      ['disconnect', 'devices/d1', 'client-disconnect', 2],
      ['kick', 'devices/d1', 'device changed', 2],
    ]);
  });

  it('records no close for a CONNECT that never completed (no connect was recorded either)', () => {
    const { recorded, session, close } = setup();
    close({}, session(false));
    expect(recorded).toEqual([]);
  });
});
