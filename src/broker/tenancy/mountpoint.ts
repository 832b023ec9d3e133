/**
 * A tenant's topics live behind its mountpoint: device topic `a/b` is routed as `<id>/a/b`, and a
 * `$` topic such as `$SYS/x` as `$<id>/$SYS/x`. Keeping `$` topics under a root that itself starts
 * with `$` means aedes' own rule [MQTT-4.7.2-1] (wildcards at the first level never match `$`
 * topics) keeps holding inside the tenant, and no filter of one tenant can match another's topics.
 * Outbound, aedes' write.js (patched) calls `unmountTopic` when serialising a PUBLISH.
 */
export class Mountpoint {
  readonly prefix: string;
  readonly dollarPrefix: string;
  readonly unmount: (routed: string) => string;

  constructor(readonly tenantId: string) {
    this.prefix = tenantId + '/';
    this.dollarPrefix = '$' + tenantId + '/';
    const n = this.prefix.length;
    // A fan-out writes the same routed topic to every subscriber: the last answer is kept so
    // that it is sliced once per message, not once per delivery
    let lastRouted = '';
    let lastTopic = '';
    this.unmount = (routed: string): string => {
      if (routed !== lastRouted) {
        // '$' is 36
        lastTopic = routed.slice(routed.charCodeAt(0) === 36 ? n + 1 : n);
        lastRouted = routed;
      }
      return lastTopic;
    };
  }

  mount(topic: string): string {
    return topic.charCodeAt(0) === 36 ? this.dollarPrefix + topic : this.prefix + topic;
  }

  /** Is `routed` inside this mountpoint? */
  owns(routed: string): boolean {
    return routed.startsWith(this.prefix) || routed.startsWith(this.dollarPrefix);
  }

  /** Device-side client ids are namespaced the same way, so takeovers stay inside a tenant. */
  clientId(deviceClientId: string): string {
    return this.tenantId + ':' + deviceClientId;
  }

  deviceClientId(brokerClientId: string): string {
    return brokerClientId.slice(this.tenantId.length + 1);
  }

  /** Is `routed` a `$SYS` topic of the tenant (which devices may read but never publish)? */
  isSys(routed: string): boolean {
    return routed.charCodeAt(0) === 36 && routed.startsWith('$SYS', this.dollarPrefix.length);
  }
}

/** A device-side `$SYS` filter: the tenant's own broker figures, which every device may read. */
export function isSysFilter(filter: string): boolean {
  return filter === '$SYS' || filter.startsWith('$SYS/');
}

/** Denied publishes are re-routed here and so reach nobody: no tenant's filter can match it. */
export const DROPPED_TOPIC = '$dropped';
