import type { SessionView } from '../sessions/session-source';
import { mergeSessionPages } from './cluster-session-source';
import { redisPatternFor } from './redis-pattern';

describe('redisPatternFor (PSUBSCRIBE pattern of an MQTT filter)', () => {
  it.each([
    ['t1/a/b', 't1/a/b'], // no wildcard: a plain SUBSCRIBE, nothing escaped
    ['t1/a[1]/b', 't1/a[1]/b'],
    ['t1/+/b', 't1/*/b'],
    ['t1/#', 't1*'], // `t1/#` matches `t1` too [MQTT-4.7.1-2]
    ['#', '*'],
    ['$t1/$SYS/#', '$t1/$SYS*'],
    // Redis glob characters in the filter are literal in MQTT
    ['t1/+/x[1]', 't1/*/x\\[1\\]'],
    ['t1/a\\b/#', 't1/a\\\\b*'],
    ['t1/what?/+', 't1/what\\?/*'],
    ['t1/a*b/+', 't1/a\\*b/*'],
  ])('%s -> %s', (filter, pattern) => {
    expect(redisPatternFor(filter)).toBe(pattern);
  });
});

describe('mergeSessionPages', () => {
  const s = (clientId: string, node: string, connectedAt = '2026-01-01T00:00:00.000Z'): SessionView => ({
    clientId,
    node,
    connectedAt,
    device: 'd',
    remoteAddress: null,
    cleanSession: true,
    keepalive: 60,
    protocolVersion: 4,
    subscriptions: 0,
    messagesIn: 0,
    messagesOut: 0,
  });

  it('keeps the first `limit` client ids of the union, in code unit order', () => {
    const merged = mergeSessionPages([[s('a', 'n1'), s('c', 'n1'), s('e', 'n1')], [s('B', 'n2'), s('b', 'n2'), s('d', 'n2')]], 4);
    expect(merged.map((x) => x.clientId)).toEqual(['B', 'a', 'b', 'c']);
  });

  it('shows a client id caught mid-takeover on two nodes once, on the newer connection', () => {
    const merged = mergeSessionPages(
      [[s('x', 'n1', '2026-01-01T00:00:00.000Z')], [s('x', 'n2', '2026-01-01T00:00:01.000Z')]],
      10,
    );
    expect(merged).toEqual([expect.objectContaining({ clientId: 'x', node: 'n2' })]);
  });
});
