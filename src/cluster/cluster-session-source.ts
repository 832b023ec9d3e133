import { AppError } from '../common/errors';
import type { SessionDetail, SessionQuery, SessionSource, SessionView } from '../sessions/session-source';
import type { ClusterService } from './cluster.service';
import type { Gathered } from './node-bus';

/** How long a sessions request waits for every node. */
const SESSIONS_TIMEOUT_MS = 1500;

interface ListArgs {
  tenantId: string;
  query: SessionQuery;
}

interface OneArgs {
  tenantId: string;
  clientId: string;
}

/**
 * The sessions of every node: each request goes to all nodes over Redis and each answers from
 * its own memory (`LocalSessionSource`). Nothing is kept in Redis, so a node that dies simply
 * stops answering and its sessions leave the list with it, with nothing stale to expire.
 *
 * A list page is a k-way merge: every node returns its first `limit` sessions after the cursor,
 * ordered by client id, and the page is the first `limit` of their union.
 */
export class ClusterSessionSource implements SessionSource {
  constructor(
    private readonly local: SessionSource,
    private readonly cluster: ClusterService,
  ) {
    cluster.handle('sessions.list', (args) => {
      const { tenantId, query } = args as ListArgs;
      return this.local.list(tenantId, query);
    });
    cluster.handle('sessions.get', (args) => {
      const { tenantId, clientId } = args as OneArgs;
      return this.local.get(tenantId, clientId);
    });
    cluster.handle('sessions.kick', (args) => {
      const { tenantId, clientId } = args as OneArgs;
      return this.local.kick(tenantId, clientId);
    });
  }

  async list(tenantId: string, query: SessionQuery): Promise<SessionView[]> {
    // a node that did not answer in time is left out rather than failing the whole list
    const { answers } = await this.ask<SessionView[]>('sessions.list', { tenantId, query } satisfies ListArgs);
    return mergeSessionPages(answers.map((a) => a.result ?? []), query.limit);
  }

  async get(tenantId: string, clientId: string): Promise<SessionDetail | null> {
    const gathered = await this.ask<SessionDetail | null>('sessions.get', { tenantId, clientId } satisfies OneArgs);
    const found = newest(gathered.answers.map((a) => a.result ?? null));
    if (found === null) this.requireComplete(gathered);
    return found;
  }

  async kick(tenantId: string, clientId: string): Promise<boolean> {
    const gathered = await this.ask<boolean>('sessions.kick', { tenantId, clientId } satisfies OneArgs);
    const kicked = gathered.answers.some((a) => a.result === true);
    if (!kicked) this.requireComplete(gathered);
    return kicked;
  }

  private async ask<T>(method: string, args: ListArgs | OneArgs): Promise<Gathered<T>> {
    const gathered = await this.cluster.onEveryNode<T>(method, args, SESSIONS_TIMEOUT_MS);
    return { ...gathered, answers: gathered.answers.filter((a) => a.ok) };
  }

  /** "Not found" is an answer only when every node gave one: else the session may be on the silent node. */
  private requireComplete(gathered: Gathered<unknown>): void {
    if (!gathered.complete) {
      throw new AppError('service-unavailable', `a node did not answer within ${SESSIONS_TIMEOUT_MS} ms; retry`);
    }
  }
}

/**
 * The first `limit` sessions of several pages, each ordered by client id. During a takeover the
 * same client id may briefly be on two nodes: the newer connection is the session.
 */
export function mergeSessionPages<T extends SessionView>(pages: T[][], limit: number): T[] {
  const byId = new Map<string, T>();
  for (const page of pages) {
    for (const s of page) {
      const seen = byId.get(s.clientId);
      if (!seen || seen.connectedAt < s.connectedAt) byId.set(s.clientId, s);
    }
  }
  // UTF-16 code unit order, as every node sorts (SessionSource)
  return [...byId.values()].sort((a, b) => (a.clientId < b.clientId ? -1 : a.clientId > b.clientId ? 1 : 0)).slice(0, limit);
}

function newest<T extends SessionView>(found: (T | null)[]): T | null {
  let best: T | null = null;
  for (const s of found) if (s && (!best || best.connectedAt < s.connectedAt)) best = s;
  return best;
}
