import { registerDecorator, ValidationOptions } from 'class-validator';
import { topicFilterError, topicNameError } from '../acl/topic-filter';

/**
 * aedes refuses topics deeper than 100 levels (its default maxTopicLevels); the mountpoint adds
 * one, so a device-side topic may have 99.
 */
export const MAX_DEVICE_TOPIC_LEVELS = 99;

function levelsError(topic: string): string | null {
  let levels = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 47) levels++;
  return levels > MAX_DEVICE_TOPIC_LEVELS ? `has more than ${MAX_DEVICE_TOPIC_LEVELS} levels` : null;
}

/** Why `topic` is not a name a client may publish to (as the broker checks a device's PUBLISH), or null. */
export function publishTopicError(topic: string): string | null {
  const err = topicNameError(topic) ?? levelsError(topic);
  if (err) return err;
  // like a device: nobody publishes into $SYS, which the broker fills per tenant
  if (topic.startsWith('$SYS')) return 'must not be a $SYS topic';
  return null;
}

/** Why `topic` cannot name a retained message (wildcards, empty...), or null. */
export function retainedTopicError(topic: string): string | null {
  return topicNameError(topic) ?? levelsError(topic);
}

/** Why `filter` is not a valid MQTT topic filter, or null. */
export function filterError(filter: string): string | null {
  return topicFilterError(filter) ?? levelsError(filter);
}

function topicDecorator(name: string, check: (v: string) => string | null, what: string, options?: ValidationOptions) {
  return (target: object, propertyName: string | symbol): void =>
    registerDecorator({
      name,
      target: target.constructor,
      propertyName: propertyName as string,
      options,
      validator: {
        validate: (value: unknown) => typeof value === 'string' && check(value) === null,
        defaultMessage: (args) =>
          typeof args?.value === 'string' ? `is not ${what}: ${check(args.value)}` : `must be a string (${what})`,
      },
    });
}

export const IsPublishTopic = (o?: ValidationOptions) => topicDecorator('isPublishTopic', publishTopicError, 'an MQTT topic name one may publish to', o);
export const IsRetainedTopic = (o?: ValidationOptions) => topicDecorator('isRetainedTopic', retainedTopicError, 'an MQTT topic name', o);
export const IsMqttFilter = (o?: ValidationOptions) => topicDecorator('isMqttFilter', filterError, 'an MQTT topic filter', o);
