/** MQTT topic-name and topic-filter syntax and matching, on device-side topics. */

/** [MQTT-4.7.3-1..3], [MQTT-1.5.3-2]: returns why `filter` is invalid, or null. */
export function topicFilterError(filter: string): string | null {
  if (filter.length === 0) return 'must not be empty';
  if (Buffer.byteLength(filter, 'utf8') > 65535) return 'is longer than 65535 bytes';
  if (filter.includes('\u0000')) return 'must not contain U+0000';
  const levels = filter.split('/');
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    if (level.includes('#') && (level !== '#' || i !== levels.length - 1)) {
      return "'#' must be the whole last level";
    }
    if (level.includes('+') && level !== '+') return "'+' must be a whole level";
  }
  return null;
}

/** [MQTT-4.7.1-1], [MQTT-4.7.3-1]: returns why `topic` is not a valid topic name, or null. */
export function topicNameError(topic: string): string | null {
  if (topic.length === 0) return 'must not be empty';
  if (Buffer.byteLength(topic, 'utf8') > 65535) return 'is longer than 65535 bytes';
  if (topic.includes('\u0000')) return 'must not contain U+0000';
  if (topic.includes('+') || topic.includes('#')) return 'must not contain wildcards';
  return null;
}

/** Is every topic matched by `inner` also matched by `outer`? */
export function filterCovers(outer: readonly string[], inner: readonly string[]): boolean {
  for (let i = 0; i < outer.length; i++) {
    const o = outer[i];
    if (o === '#') return true;
    if (i >= inner.length) return false;
    const n = inner[i];
    if (n === '#') return false;
    if (o === '+') continue;
    if (n === '+' || n !== o) return false;
  }
  return outer.length === inner.length;
}

/** Is there a topic that both filters match? */
export function filtersIntersect(a: readonly string[], b: readonly string[]): boolean {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a[i];
    const y = b[i];
    if (x === '#' || y === '#') return true;
    if (x === undefined || y === undefined) return false;
    if (x !== '+' && y !== '+' && x !== y) return false;
  }
  return true;
}
