import { AclRuleInput, TenantAcl } from './compiled-acl';
import { filterCovers, filtersIntersect, topicFilterError, topicNameError } from './topic-filter';

const rule = (topic: string, more: Partial<AclRuleInput> = {}): AclRuleInput => ({
  deviceName: null,
  action: 'all',
  topic,
  permission: 'allow',
  priority: 0,
  ...more,
});

const acl = (rules: AclRuleInput[], device: string | null = 'dev1', clientId = 'c1', defaultAllow = false) =>
  new TenantAcl(rules, defaultAllow, 0).forClient(device, clientId);

describe('topic syntax', () => {
  it.each([
    ['a/b', null],
    ['#', null],
    ['+/+/#', null],
    ['', 'must not be empty'],
    ['a/#/b', "'#' must be the whole last level"],
    ['a#', "'#' must be the whole last level"],
    ['a/b+', "'+' must be a whole level"],
    ['a\u0000b', 'must not contain U+0000'],
  ])('filter %j → %j', (filter, error) => {
    expect(topicFilterError(filter)).toBe(error);
  });

  it.each([
    ['a/b', null],
    ['$SYS/x', null],
    ['', 'must not be empty'],
    ['a/+', 'must not contain wildcards'],
    ['a/#', 'must not contain wildcards'],
  ])('name %j → %j', (name, error) => {
    expect(topicNameError(name)).toBe(error);
  });

  it.each([
    ['#', 'a/b/c', true],
    ['a/#', 'a', true],
    ['a/+', 'a/b', true],
    ['a/+', 'a/+', true],
    ['a/+', 'a/#', false],
    ['a/b', 'a/+', false],
    ['+/b', 'a/b', true],
    ['a/b', 'a/b/c', false],
  ])('%s covers %s: %s', (outer, inner, expected) => {
    expect(filterCovers(outer.split('/'), inner.split('/'))).toBe(expected);
  });

  it.each([
    ['a/#', 'a/b', true],
    ['a/+', '+/b', true],
    ['a/b', 'a/c', false],
    ['a/b/c', 'a/+', false],
    ['#', 'x', true],
  ])('%s intersects %s: %s', (a, b, expected) => {
    expect(filtersIntersect(a.split('/'), b.split('/'))).toBe(expected);
  });
});

describe('ClientAcl', () => {
  it('denies everything when no rule matches, unless the tenant defaults to allow', () => {
    expect(acl([]).canPublish('a')).toBe(false);
    expect(acl([]).checkSubscribe('a').allowed).toBe(false);
    expect(acl([], 'd', 'c', true).canPublish('a')).toBe(true);
  });

  it('substitutes ${device} and ${clientid}', () => {
    const a = acl([rule('sensors/${device}/#'), rule('cmd/${clientid}', { action: 'subscribe' })], 'dev1', 'cid');
    expect(a.canPublish('sensors/dev1/t')).toBe(true);
    expect(a.canPublish('sensors/dev2/t')).toBe(false);
    expect(a.checkSubscribe('cmd/cid').allowed).toBe(true);
    expect(a.checkSubscribe('cmd/other').allowed).toBe(false);
    expect(a.canPublish('cmd/cid')).toBe(false); // subscribe-only rule
  });

  it('never lets a client id with wildcards or slashes widen an allow rule', () => {
    const a = acl([rule('cmd/${clientid}')], 'dev1', '#');
    expect(a.checkSubscribe('cmd/#').allowed).toBe(false);
    expect(a.canPublish('cmd/x')).toBe(false);
    const slash = acl([rule('cmd/${clientid}')], 'dev1', 'a/b');
    expect(slash.canPublish('cmd/a/b')).toBe(false);
  });

  it('gives the anonymous principal nothing through ${device} rules', () => {
    const a = acl([rule('sensors/${device}/#')], null, 'c');
    expect(a.canPublish('sensors//x')).toBe(false);
    expect(a.canPublish('sensors/anything/x')).toBe(false);
  });

  it('applies rules of other devices to nobody else', () => {
    const a = acl([rule('#', { deviceName: 'admin' })], 'dev1');
    expect(a.canPublish('x')).toBe(false);
    expect(acl([rule('#', { deviceName: 'admin' })], 'admin').canPublish('x')).toBe(true);
  });

  it('lets the higher priority win and deny win ties', () => {
    const rules = [
      rule('a/#'),
      rule('a/secret/#', { permission: 'deny' }),
      rule('a/secret/open', { priority: 1 }),
      rule('b/#', { priority: 2 }),
      rule('b/#', { priority: 2, permission: 'deny' }),
    ];
    const a = acl(rules);
    expect(a.canPublish('a/x')).toBe(true);
    expect(a.canPublish('a/secret/x')).toBe(false);
    expect(a.canPublish('a/secret/open')).toBe(true);
    expect(a.canPublish('b/x')).toBe(false);
  });

  it('grants a subscription only when an allow rule covers the whole filter', () => {
    const a = acl([rule('sensors/${device}/#')]);
    expect(a.checkSubscribe('sensors/dev1/#').allowed).toBe(true);
    expect(a.checkSubscribe('sensors/dev1/+/x').allowed).toBe(true);
    expect(a.checkSubscribe('sensors/#').allowed).toBe(false);
    expect(a.checkSubscribe('sensors/+/t').allowed).toBe(false);
  });

  it('marks a subscription a deny rule partly overlaps, and filters its deliveries', () => {
    const a = acl([rule('#'), rule('secret/#', { permission: 'deny' })]);
    expect(a.checkSubscribe('#')).toEqual({ allowed: true, partlyDenied: true });
    expect(a.checkSubscribe('public/#')).toEqual({ allowed: true, partlyDenied: false });
    expect(a.checkSubscribe('secret/x').allowed).toBe(false);
    const unmount = (t: string) => t.slice('t1/'.length);
    expect(a.canReceiveRouted('t1/secret/x', unmount)).toBe(false);
    expect(a.canReceiveRouted('t1/public/x', unmount)).toBe(true);
  });

  it('memoises per routed topic and stays correct after the memo fills up', () => {
    const a = acl([rule('ok/#')]);
    let unmounts = 0;
    const unmount = (t: string) => {
      unmounts++;
      return t.slice(3);
    };
    expect(a.canPublishRouted('t1/ok/1', unmount)).toBe(true);
    expect(a.canPublishRouted('t1/ok/1', unmount)).toBe(true);
    expect(unmounts).toBe(1);
    for (let i = 0; i < 2000; i++) expect(a.canPublishRouted(`t1/no/${i}`, unmount)).toBe(false);
    expect(a.canPublishRouted('t1/ok/1', unmount)).toBe(true);
  });

  it('finds the deciding rule among a thousand without scanning them all per check', () => {
    const rules = Array.from({ length: 1000 }, (_, i) => rule(`fleet/${i}/+/data`, { priority: i % 3 }));
    rules.push(rule('fleet/500/x/data', { permission: 'deny', priority: 5 }));
    const a = acl(rules);
    expect(a.canPublish('fleet/999/y/data')).toBe(true);
    expect(a.canPublish('fleet/500/x/data')).toBe(false);
    expect(a.canPublish('fleet/1000/y/data')).toBe(false);
  });
});

describe('TenantAcl: one compilation shared by the clients of a tenant', () => {
  const rules = [
    rule('devices/${device}/#'),
    rule('cmd/${clientid}/+', { action: 'subscribe' }),
    rule('devices/+/locked', { permission: 'deny', priority: 1 }),
    rule('admin/#', { deviceName: 'dev2' }),
    rule('x/${device}/${clientid}'),
  ];

  it("decides for each client with its own device name and client id", () => {
    const tenant = new TenantAcl(rules, false, 7);
    const one = tenant.forClient('dev1', 'c1');
    const two = tenant.forClient('dev2', 'c2');
    expect(one.generation).toBe(7);
    expect(one.canPublish('devices/dev1/t')).toBe(true);
    expect(one.canPublish('devices/dev2/t')).toBe(false);
    expect(two.canPublish('devices/dev2/t')).toBe(true);
    expect(two.canPublish('devices/dev1/t')).toBe(false);
    expect(one.canPublish('devices/dev1/locked')).toBe(false);
    expect(one.canPublish('admin/x')).toBe(false);
    expect(two.canPublish('admin/x')).toBe(true);
    expect(one.canPublish('x/dev1/c1')).toBe(true);
    expect(one.canPublish('x/dev1/c2')).toBe(false);
    expect(two.canPublish('x/dev2/c2')).toBe(true);
    expect(one.checkSubscribe('cmd/c1/+').allowed).toBe(true);
    expect(one.checkSubscribe('cmd/c2/+').allowed).toBe(false);
    expect(two.checkSubscribe('cmd/c2/go').allowed).toBe(true);
  });

  it('shares one ClientAcl only while no rule depends on the client', () => {
    const independent = new TenantAcl([rule('a/#')], false, 0);
    expect(independent.forClient('dev1', 'c1')).toBe(independent.forClient('dev2', 'c2'));
    const dependent = new TenantAcl(rules, false, 0);
    expect(dependent.forClient('dev1', 'c1')).not.toBe(dependent.forClient('dev1', 'c1'));
  });

  it('lets a placeholder that cannot be filled in deny as a + (never allow), as mosquitto does', () => {
    const deny = [rule('#'), rule('cmd/${clientid}', { permission: 'deny' }), rule('own/${device}', { permission: 'deny' })];
    const tenant = new TenantAcl(deny, false, 0);
    const unsafe = tenant.forClient('dev1', 'a/b');
    expect(unsafe.canPublish('cmd/anything')).toBe(false);
    expect(unsafe.canPublish('own/dev1')).toBe(false);
    expect(unsafe.canPublish('own/dev2')).toBe(true);
    const anonymous = tenant.forClient(null, 'c1');
    expect(anonymous.canPublish('own/anything')).toBe(false);
    expect(anonymous.canPublish('cmd/c1')).toBe(false);
    expect(anonymous.canPublish('cmd/c2')).toBe(true);
    expect(anonymous.checkSubscribe('own/+')).toEqual({ allowed: false, partlyDenied: false });
    expect(anonymous.checkSubscribe('other/#')).toEqual({ allowed: true, partlyDenied: false });
    // a level that only partly is a placeholder matches nothing when it can't be filled in
    const partial = new TenantAcl([rule('#'), rule('p/d-${device}', { permission: 'deny' })], false, 0);
    expect(partial.forClient(null, 'c').canPublish('p/d-x')).toBe(true);
    expect(partial.forClient('x', 'c').canPublish('p/d-x')).toBe(false);
  });
});
