/**
 * The MQTT user name is `<tenant-slug>:<device-name>` (DESIGN.md). Slugs never contain ':';
 * device names may not either, but everything after the first ':' is the device name, so a
 * bad one is refused by the lookup, not cut short here.
 */

/** The tenant slug of a user name; null when it has no `slug:` prefix. */
export function tenantSlugOf(username: string): string | null {
  const sep = username.indexOf(':');
  return sep > 0 ? username.slice(0, sep) : null;
}

/** The device name of a user name; null when it has no `slug:` prefix. */
export function deviceNameOf(username: string): string | null {
  const sep = username.indexOf(':');
  return sep > 0 ? username.slice(sep + 1) : null;
}
