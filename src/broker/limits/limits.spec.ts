import { EventEmitter } from 'node:events';
import { DEFAULT_LIMITS } from '../../tenants/limits';
import type { HookEvents } from '../hooks';
import type { IdentityService } from '../identity/identity.service';
import { TenantRuntime } from '../identity/tenant-runtime';
import { BrokerClient, TenantSession } from '../session';
import { BrokerLimits } from './broker-limits';
import { addressKey, FailureTracker, LoginGuard } from './login-guard';
import { TokenBucket } from './token-bucket';

describe('TokenBucket', () => {
  it('lets a second of budget through at once, then one token per 1/rate second', () => {
    const b = new TokenBucket();
    for (let i = 0; i < 10; i++) expect(b.take(1000, 10)).toBe(0);
    expect(b.take(1000, 10)).toBe(100); // the 11th waits 100 ms
    expect(b.take(1000, 10)).toBe(200); // and the 12th, behind it, 200 ms
    expect(b.take(1300, 10)).toBe(0); // 300 ms later the debt is paid
  });

  it('never holds more than one second of budget', () => {
    const b = new TokenBucket();
    b.take(0, 5);
    for (let i = 0; i < 5; i++) expect(b.take(60_000, 5)).toBe(0);
    expect(b.take(60_000, 5)).toBeGreaterThan(0);
  });
});

describe('FailureTracker', () => {
  it('locks a key at the threshold inside the window, for the lockout', () => {
    const t = new FailureTracker(3, 1000, 5000, 100);
    expect(t.fail('a', 0)).toBe(1);
    expect(t.fail('a', 500)).toBe(2);
    expect(t.isLocked('a', 600)).toBe(false);
    expect(t.fail('a', 900)).toBe(3);
    expect(t.isLocked('a', 901)).toBe(true);
    expect(t.isLocked('a', 5899)).toBe(true);
    expect(t.isLocked('a', 5900)).toBe(false);
    expect(t.size).toBe(0); // expired entries go
  });

  it('forgets failures older than the window', () => {
    const t = new FailureTracker(3, 1000, 5000, 100);
    t.fail('a', 0);
    t.fail('a', 100);
    expect(t.fail('a', 1200)).toBe(1);
    expect(t.isLocked('a', 1201)).toBe(false);
  });

  it('holds at most maxEntries keys, dropping the one touched longest ago', () => {
    const t = new FailureTracker(3, 1000, 5000, 3);
    t.fail('a', 0);
    t.fail('b', 1);
    t.fail('c', 2);
    t.fail('a', 3); // touched again: now the newest
    t.fail('d', 4); // evicts b
    expect(t.size).toBe(3);
    expect(t.fail('b', 5)).toBe(1);
    expect(t.fail('a', 6)).toBe(3);
  });
});

describe('LoginGuard', () => {
  const options = { windowMs: 300_000, lockoutMs: 300_000, maxPerAddress: 10, maxPerDevice: 5, delayMs: 100, maxTracked: 1000 };

  it('locks the address/device pair at 5 failures, the address at 10', () => {
    const g = new LoginGuard(options);
    for (let i = 0; i < 4; i++) g.failed('10.0.0.1', 'acme:d1', i);
    expect(g.lockedOut('10.0.0.1', 'acme:d1', 10)).toBeNull();
    g.failed('10.0.0.1', 'acme:d1', 11);
    expect(g.lockedOut('10.0.0.1', 'acme:d1', 12)).toBe('device');
    expect(g.lockedOut('10.0.0.2', 'acme:d1', 12)).toBeNull(); // the device, from elsewhere
    expect(g.lockedOut('10.0.0.1', 'acme:d2', 12)).toBeNull(); // another device, from there
    for (let i = 0; i < 5; i++) g.failed('10.0.0.1', `acme:x${i}`, 20 + i);
    expect(g.lockedOut('10.0.0.1', 'acme:d2', 30)).toBe('address');
    expect(g.lockouts).toBe(2);
    expect(g.lockedOut('10.0.0.1', 'acme:d2', 30 + 300_000)).toBeNull();
  });

  it('answers failures later and later: 1, 2, 4, 8, 16 times the base, then 16', () => {
    const g = new LoginGuard({ ...options, maxPerAddress: 100, maxPerDevice: 100 });
    const delays = Array.from({ length: 7 }, (_, i) => g.failed('10.0.0.1', 'acme:d1', i));
    expect(delays).toEqual([100, 200, 400, 800, 1600, 1600, 1600]);
  });

  it('clears the pair on success, not the address', () => {
    const g = new LoginGuard(options);
    for (let i = 0; i < 4; i++) g.failed('10.0.0.1', 'acme:d1', i);
    g.succeeded('10.0.0.1', 'acme:d1');
    expect(g.failed('10.0.0.1', 'acme:d1', 5)).toBe(100 * 16); // address: 5th failure
    expect(g.lockedOut('10.0.0.1', 'acme:d1', 6)).toBeNull(); // pair: 1st
  });

  it('stays bounded whatever the number of addresses', () => {
    const g = new LoginGuard({ ...options, maxTracked: 50 });
    for (let i = 0; i < 10_000; i++) g.failed(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `t:d${i}`, i);
    expect(g.tracked).toBeLessThanOrEqual(100);
  });

  it('counts IPv6 by /64 and IPv4-mapped addresses as IPv4', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:bbbb:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(addressKey('::1')).toBe('0:0:0:0::/64');
    expect(addressKey('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey('192.0.2.7')).toBe('192.0.2.7');
    expect(addressKey(null)).toBe('-');
  });
});

describe('BrokerLimits: rate limits', () => {
  const events: HookEvents = { connectRefused: () => undefined, publishDropped: () => undefined, sessionClosed: () => undefined };

  function setup(limits: Partial<typeof DEFAULT_LIMITS>) {
    const tenant = new TenantRuntime({
      id: 't1',
      slug: 'acme',
      limits: { ...DEFAULT_LIMITS, ...limits },
      requireClientCertificates: false,
      defaultAclPermission: 'allow',
      devices: [],
      rules: [],
      certificates: [],
    });
    const session = new TenantSession(tenant, 'd1', 'c1', tenant.compileAcl('d1', 'c1'), null, true, 60, 4, 'password', null);
    const conn = new EventEmitter();
    const nextBatch = jest.fn();
    conn.on('readable', nextBatch);
    const parser = { _strict: { maxPacketSize: 262_144 } };
    const client = { conn, _nextBatch: nextBatch, _parser: parser, closed: false, deliverQoS: jest.fn(), subscriptions: {} } as unknown as BrokerClient;
    const limitsImpl = new BrokerLimits({} as IdentityService, events, 262_144);
    return { tenant, session, conn, nextBatch, client, limitsImpl, parser };
  }

  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('holds PUBLISHes over the budget in order, and stops reading the socket meanwhile', () => {
    const { session, conn, nextBatch, client, limitsImpl } = setup({ maxClientMessagesPerSecond: 2 });
    const done: number[] = [];
    for (let i = 0; i < 5; i++) limitsImpl.admit(client, session, () => done.push(i));
    expect(done).toEqual([0, 1]);
    conn.emit('readable');
    expect(nextBatch).not.toHaveBeenCalled(); // reads wait while publishes are held
    jest.advanceTimersByTime(500);
    expect(done).toEqual([0, 1, 2]);
    jest.advanceTimersByTime(1000);
    expect(done).toEqual([0, 1, 2, 3, 4]);
    conn.emit('readable');
    expect(nextBatch).toHaveBeenCalledTimes(1); // and resume once nothing is held
    expect(session.tenant.counters.limitHits.maxClientMessagesPerSecond).toBe(3);
  });

  it("shares the tenant's budget between its clients, and keeps other tenants apart", () => {
    const a = setup({ maxMessagesPerSecond: 3 });
    const other = setup({ maxMessagesPerSecond: 3 });
    const session2 = new TenantSession(a.tenant, 'd2', 'c2', a.tenant.compileAcl('d2', 'c2'), null, true, 60, 4, 'password', null);
    const passed: string[] = [];
    for (let i = 0; i < 2; i++) a.limitsImpl.admit(a.client, a.session, () => passed.push(`a1-${i}`));
    for (let i = 0; i < 2; i++) a.limitsImpl.admit(a.client, session2, () => passed.push(`a2-${i}`));
    for (let i = 0; i < 3; i++) other.limitsImpl.admit(other.client, other.session, () => passed.push(`b-${i}`));
    expect(passed).toEqual(['a1-0', 'a1-1', 'a2-0', 'b-0', 'b-1', 'b-2']);
    expect(a.tenant.counters.limitHits.maxMessagesPerSecond).toBe(1);
    expect(other.tenant.counters.limitHits.maxMessagesPerSecond).toBe(0);
  });

  it("tightens the connection's packet size limit to what the tenant's maxPayloadBytes allows", () => {
    const small = setup({ maxPayloadBytes: 1024 });
    small.limitsImpl.attach(small.client, small.session);
    expect(small.parser._strict.maxPacketSize).toBe(1024 + 5 + 2 + 65535 + 2);
    const large = setup({ maxPayloadBytes: 1 << 20 });
    large.limitsImpl.attach(large.client, large.session);
    expect(large.parser._strict.maxPacketSize).toBe(262_144); // MAX_PACKET_SIZE still rules
  });

  it('lets nothing held through once the client has closed', () => {
    const { session, client, limitsImpl } = setup({ maxClientMessagesPerSecond: 1 });
    const done = jest.fn();
    limitsImpl.admit(client, session, done);
    limitsImpl.admit(client, session, done);
    (client as { closed: boolean }).closed = true;
    jest.advanceTimersByTime(5000);
    expect(done).toHaveBeenCalledTimes(1);
  });
});
