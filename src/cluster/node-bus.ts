import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

/** One node's answer to a broadcast. */
export interface NodeAnswer<T> {
  node: string;
  ok: boolean;
  result?: T;
  error?: string;
}

export interface Gathered<T> {
  answers: NodeAnswer<T>[];
  /** false when some node that received the request did not answer in time */
  complete: boolean;
}

export type BusHandler = (args: unknown, from: string) => Promise<unknown>;

interface Request {
  t: 'req';
  id: string;
  from: string;
  method: string;
  args: unknown;
}

interface Reply {
  t: 'res';
  id: string;
  from: string;
  ok: boolean;
  result?: unknown;
  error?: string;
}

interface Pending {
  answers: NodeAnswer<unknown>[];
  /** how many nodes received the request: known once PUBLISH has answered */
  expected: number;
  finish: (complete: boolean) => void;
}

/**
 * Request/response between the nodes over Redis pub/sub. A request goes to every node, this one
 * included; Redis' PUBLISH answers how many subscribers received it, so the caller knows how
 * many answers to wait for. A node that died has no subscription left and is not waited for; a
 * node that hangs is waited for until the timeout, and the answer says it is incomplete.
 */
export class NodeBus {
  private readonly handlers = new Map<string, BusHandler>();
  private readonly pending = new Map<string, Pending>();
  private readonly broadcastChannel: string;
  private readonly directChannel: string;

  constructor(
    /** a connection that fails fast (no offline queue): callers learn at once that Redis is gone */
    private readonly pub: Redis,
    /** a connection in subscriber mode, owned by the bus */
    private readonly sub: Redis,
    readonly nodeId: string,
    private readonly prefix: string,
  ) {
    this.broadcastChannel = `${prefix}bus`;
    this.directChannel = `${prefix}node:${nodeId}`;
  }

  async start(): Promise<void> {
    this.sub.on('message', (channel: string, message: string) => {
      if (channel === this.broadcastChannel || channel === this.directChannel) this.onMessage(message);
    });
    await this.sub.subscribe(this.broadcastChannel, this.directChannel);
  }

  handle(method: string, handler: BusHandler): void {
    this.handlers.set(method, handler);
  }

  /** Runs `method` on every node and gathers the answers, waiting at most `timeoutMs`. */
  async broadcast<T>(method: string, args: unknown, timeoutMs: number): Promise<Gathered<T>> {
    const id = randomUUID();
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => {
      const entry: Pending = {
        answers: [],
        expected: Number.POSITIVE_INFINITY,
        finish: (complete) => {
          clearTimeout(timer);
          this.pending.delete(id);
          resolve(complete);
        },
      };
      this.pending.set(id, entry);
      timer = setTimeout(() => entry.finish(false), timeoutMs);
    });
    const entry = this.pending.get(id) as Pending;
    const request: Request = { t: 'req', id, from: this.nodeId, method, args };
    try {
      // answers may come back before PUBLISH itself answers: they are counted as they arrive
      entry.expected = await this.pub.publish(this.broadcastChannel, JSON.stringify(request));
    } catch (err) {
      entry.finish(false);
      throw err;
    }
    if (entry.answers.length >= entry.expected) entry.finish(true);
    const complete = await done;
    return { answers: entry.answers as NodeAnswer<T>[], complete };
  }

  private onMessage(raw: string): void {
    let message: Request | Reply;
    try {
      message = JSON.parse(raw) as Request | Reply;
    } catch {
      return;
    }
    if (message.t === 'res') {
      const entry = this.pending.get(message.id);
      if (!entry) return; // timed out meanwhile
      entry.answers.push({ node: message.from, ok: message.ok, result: message.result, error: message.error });
      if (entry.answers.length >= entry.expected) entry.finish(true);
      return;
    }
    if (message.t === 'req') void this.answer(message);
  }

  private async answer(request: Request): Promise<void> {
    const handler = this.handlers.get(request.method);
    let reply: Reply;
    try {
      if (!handler) throw new Error(`no handler for ${request.method}`);
      const result = await handler(request.args, request.from);
      reply = { t: 'res', id: request.id, from: this.nodeId, ok: true, result };
    } catch (err) {
      reply = { t: 'res', id: request.id, from: this.nodeId, ok: false, error: (err as Error).message };
    }
    // the requester may be gone: nothing to do about a reply that cannot be sent
    await this.pub.publish(`${this.prefix}node:${request.from}`, JSON.stringify(reply)).catch(() => undefined);
  }

  /** Pending broadcasts end at once, incomplete. */
  stop(): void {
    for (const entry of [...this.pending.values()]) entry.finish(false);
  }
}
