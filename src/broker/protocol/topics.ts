import { isValidMqttString } from './strings';

/**
 * Topic names and filters as a device sees them (before the tenant mountpoint is added).
 *
 * Levels: 201, that is 200 '/' separators, mosquitto's limit. The routing tries (qlobber in
 * mqemitter and aedes-persistence) throw synchronously on a topic deeper than they were built
 * for, so a deeper topic is refused here, and aedes must be created with
 * `maxTopicLevels: MAX_TOPIC_LEVELS + 1` (the mountpoint adds one level; the aedes patch
 * builds its tries with that limit).
 */
export const MAX_TOPIC_LEVELS = 201;

function levelCount(topic: string): number {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47 /* / */) levels++;
  return levels;
}

/**
 * A PUBLISH topic name (also a will topic): at least one character [MQTT-4.7.3-1], no
 * wildcard characters [MQTT-3.3.2-2], valid UTF-8 without U+0000 [MQTT-1.5.3].
 * Returns an error message, or null when the name is valid.
 */
export function validateTopicName(topic: unknown): string | null {
  if (typeof topic !== 'string' || topic.length === 0) return 'topic name must not be empty';
  return topicNameSyntaxError(topic) ?? (isValidMqttString(topic) ? null : 'topic name is not a valid MQTT string');
}

/** validateTopicName for a string already known to be a valid MQTT string (the parser's case). */
export function topicNameSyntaxError(topic: string): string | null {
  if (topic.length === 0) return 'topic name must not be empty';
  if (topic.includes('+') || topic.includes('#')) return 'wildcards are not allowed in a topic name';
  if (levelCount(topic) > MAX_TOPIC_LEVELS) return `topic name has more than ${MAX_TOPIC_LEVELS} levels`;
  return null;
}

/**
 * A SUBSCRIBE/UNSUBSCRIBE topic filter: at least one character [MQTT-4.7.3-1]; '#' only alone
 * or after a '/' as the last character [MQTT-4.7.1-2]; '+' only as a whole level
 * [MQTT-4.7.1-3]; valid UTF-8 without U+0000 [MQTT-1.5.3].
 */
export function validateTopicFilter(filter: unknown): string | null {
  if (typeof filter !== 'string' || filter.length === 0) return 'topic filter must not be empty';
  return topicFilterSyntaxError(filter) ?? (isValidMqttString(filter) ? null : 'topic filter is not a valid MQTT string');
}

/** validateTopicFilter for a string already known to be a valid MQTT string (the parser's case). */
export function topicFilterSyntaxError(filter: string): string | null {
  if (filter.length === 0) return 'topic filter must not be empty';
  const last = filter.length - 1;
  for (let i = 0; i <= last; i++) {
    const c = filter.charCodeAt(i);
    if (c === 35 /* # */) {
      if (i !== last || (i > 0 && filter.charCodeAt(i - 1) !== 47)) {
        return "'#' must be the last character and occupy a whole level";
      }
    } else if (c === 43 /* + */) {
      if ((i > 0 && filter.charCodeAt(i - 1) !== 47) || (i < last && filter.charCodeAt(i + 1) !== 47)) {
        return "'+' must occupy a whole level";
      }
    }
  }
  if (levelCount(filter) > MAX_TOPIC_LEVELS) return `topic filter has more than ${MAX_TOPIC_LEVELS} levels`;
  return null;
}
