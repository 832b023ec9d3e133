/** Per-tenant limits (DESIGN.md "Limits"); stored as JSON on the tenant, defaults filled on read. */
export interface TenantLimits {
  maxConnections: number;
  maxMessagesPerSecond: number;
  maxClientMessagesPerSecond: number;
  maxPayloadBytes: number;
  maxSubscriptionsPerClient: number;
  maxRetainedMessages: number;
  maxRetainedBytes: number;
  maxInflightPerClient: number;
  /** QoS 1/2 messages kept for an offline persistent session */
  maxQueuedMessagesPerClient: number;
}

export const DEFAULT_LIMITS: Readonly<TenantLimits> = Object.freeze({
  maxConnections: 10_000,
  maxMessagesPerSecond: 20_000,
  maxClientMessagesPerSecond: 2_000,
  maxPayloadBytes: 256 * 1024,
  maxSubscriptionsPerClient: 100,
  maxRetainedMessages: 10_000,
  maxRetainedBytes: 64 * 1024 * 1024,
  maxInflightPerClient: 100,
  maxQueuedMessagesPerClient: 1000,
});

export const LIMIT_NAMES = Object.keys(DEFAULT_LIMITS) as (keyof TenantLimits)[];

export function effectiveLimits(stored: unknown): TenantLimits {
  const out: TenantLimits = { ...DEFAULT_LIMITS };
  if (stored && typeof stored === 'object') {
    for (const name of LIMIT_NAMES) {
      const v = (stored as Record<string, unknown>)[name];
      if (typeof v === 'number' && Number.isInteger(v) && v > 0) out[name] = v;
    }
  }
  return out;
}
