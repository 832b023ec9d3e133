/**
 * mqemitter-redis turns an MQTT filter into a Redis PSUBSCRIBE pattern by replacing `+` and `#`
 * with `*`, but leaves Redis' other glob characters (`? [ ] \` and a literal `*`) active. A
 * filter such as `t/+/x[1]` then misses the topic `t/a/x[1]`, and `a\b/#` misses `a\b/c`:
 * messages published on another node never arrive. Escaping them first makes the pattern match
 * every topic the filter matches (and perhaps more: the emitter still filters each message
 * with its own matcher, so over-matching costs traffic, never isolation).
 */
export function redisPatternFor(filter: string): string {
  if (!hasWildcard(filter)) return filter; // a plain SUBSCRIBE: no glob at all
  return (
    filter
      .replace(/[\\*?[\]]/g, '\\$&')
      // `a/#` also matches `a` itself [MQTT-4.7.1-2]: the separator is optional
      .replace(/\/?#/g, '*')
      .replace(/\+/g, '*')
  );
}

export function hasWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
}
