'use strict';
// The benchmark's tenant on a service column, shared by the bench and its side tools
// (conn-memory.js, storm-probe.js): limits that measure the broker, one device allowed everywhere.

// The defaults (README) cap connections at 10,000 and a client at 2,000 msg/s, which would
// measure the limiter rather than the broker.
const BENCH_LIMITS = {
  maxConnections: 100000,
  maxMessagesPerSecond: 10000000,
  maxClientMessagesPerSecond: 10000000,
  maxInflightPerClient: 65535,
  maxSubscriptionsPerClient: 1000,
};

/** a device of tenant `slug`, and a tenant-wide rule allowing every action on every topic */
async function addOpenDevice(rest, slug, name, password) {
  await rest.must('POST', `/api/v1/tenants/${slug}/devices`, { name, password });
  await rest.must('POST', `/api/v1/tenants/${slug}/acls`, { device: null, action: 'all', topic: '#', permission: 'allow', priority: 0 });
}

module.exports = { BENCH_LIMITS, addOpenDevice };
