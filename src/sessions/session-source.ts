/**
 * Where the sessions API reads live sessions from. The local implementation answers for this
 * node; a clustered deployment can provide one that asks every node and merges their answers
 * (each node's list is already ordered by client id, so a k-way merge of `limit` items per node
 * gives the page).
 */
export interface SessionView {
  /** as the device sent it (or was assigned), without the tenant namespace */
  clientId: string;
  /** null for a connection admitted through ANONYMOUS_TENANT */
  device: string | null;
  node: string;
  remoteAddress: string | null;
  connectedAt: string;
  cleanSession: boolean;
  keepalive: number;
  protocolVersion: number;
  /** number of subscriptions */
  subscriptions: number;
  messagesIn: number;
  messagesOut: number;
}

export interface SessionDetail extends SessionView {
  /** device-side filters, ordered by topic */
  subscriptionList: { topic: string; qos: number }[];
}

export interface SessionQuery {
  /** only client ids strictly greater than this one (the cursor) */
  after?: string;
  /** at most this many items */
  limit: number;
  device?: string;
  clientIdPrefix?: string;
}

export interface SessionSource {
  /** Sessions of the tenant ordered by client id (UTF-16 code unit order, like `<`). */
  list(tenantId: string, query: SessionQuery): Promise<SessionView[]>;
  get(tenantId: string, clientId: string): Promise<SessionDetail | null>;
  /** Disconnects the session at once; false when there is none. */
  kick(tenantId: string, clientId: string): Promise<boolean>;
}

export const SESSION_SOURCE = Symbol('SESSION_SOURCE');
