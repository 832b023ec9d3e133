import { filterCovers, filtersIntersect } from './topic-filter';

export type AclAction = 'publish' | 'subscribe' | 'all';
export type AclPermission = 'allow' | 'deny';

export interface AclRuleInput {
  /** null: every device of the tenant (and the anonymous principal) */
  deviceName: string | null;
  action: AclAction;
  topic: string;
  permission: AclPermission;
  priority: number;
}

interface Candidate {
  levels: string[];
  deny: boolean;
  priority: number;
}

/** A node of the filter trie: rules are found by walking the topic, not by scanning them all. */
class TrieNode {
  children: Map<string, TrieNode> | null = null;
  plus: TrieNode | null = null;
  hash: Decision | null = null;
  here: Decision | null = null;

  child(level: string): TrieNode {
    if (level === '+') return (this.plus ??= new TrieNode());
    this.children ??= new Map();
    let next = this.children.get(level);
    if (!next) this.children.set(level, (next = new TrieNode()));
    return next;
  }
}

/** The strongest rule seen: higher priority wins, deny wins at equal priority. */
class Decision {
  constructor(
    public priority: number,
    public deny: boolean,
  ) {}

  merge(priority: number, deny: boolean): void {
    if (priority > this.priority || (priority === this.priority && deny)) {
      this.priority = priority;
      this.deny = deny;
    }
  }
}

function insert(root: TrieNode, c: Candidate): void {
  let node = root;
  for (const level of c.levels) {
    if (level === '#') {
      if (node.hash) node.hash.merge(c.priority, c.deny);
      else node.hash = new Decision(c.priority, c.deny);
      return;
    }
    node = node.child(level);
  }
  if (node.here) node.here.merge(c.priority, c.deny);
  else node.here = new Decision(c.priority, c.deny);
}

function strongest(a: Decision | null, b: Decision | null): Decision | null {
  if (!a) return b;
  if (!b) return a;
  if (b.priority > a.priority || (b.priority === a.priority && b.deny)) return b;
  return a;
}

function walk(node: TrieNode, levels: readonly string[], i: number): Decision | null {
  // '#' also matches the parent level [MQTT-4.7.1-2]
  let best = node.hash;
  if (i === levels.length) return strongest(best, node.here);
  const exact = node.children?.get(levels[i]);
  if (exact) best = strongest(best, walk(exact, levels, i + 1));
  if (node.plus) best = strongest(best, walk(node.plus, levels, i + 1));
  return best;
}

const UNSAFE_IN_PATTERN = /[+#/\u0000]/;
const MEMO_LIMIT = 512;

/**
 * The rules that apply to one connected client, placeholders substituted, compiled once per
 * connect (and again when the tenant's rules change). Checks never touch the database.
 */
export class ClientAcl {
  private readonly publishTrie = new TrieNode();
  private readonly receiveTrie = new TrieNode();
  private readonly subscribeRules: Candidate[] = [];
  private readonly publishMemo = new Map<string, boolean>();
  private readonly receiveMemo = new Map<string, boolean>();

  constructor(
    rules: readonly AclRuleInput[],
    private readonly defaultAllow: boolean,
    deviceName: string | null,
    clientId: string,
    /** the tenant's rule generation this was compiled from */
    readonly generation: number,
  ) {
    const clientIdSafe = !UNSAFE_IN_PATTERN.test(clientId);
    for (const rule of rules) {
      if (rule.deviceName !== null && rule.deviceName !== deviceName) continue;
      let topic = rule.topic;
      if (topic.includes('${device}')) {
        // the anonymous principal has no device name: a rule about "the device's own topics" can't grant it anything
        if (deviceName === null) {
          if (rule.permission === 'allow') continue;
          topic = topic.replaceAll('${device}', '+');
        } else topic = topic.replaceAll('${device}', deviceName);
      }
      if (topic.includes('${clientid}')) {
        // like mosquitto's acl__pre_check: a client id with wildcards or '/' must not widen a pattern
        if (!clientIdSafe) {
          if (rule.permission === 'allow') continue;
          topic = topic.replaceAll('${clientid}', '+');
        } else topic = topic.replaceAll('${clientid}', clientId);
      }
      const c: Candidate = { levels: topic.split('/'), deny: rule.permission === 'deny', priority: rule.priority };
      if (rule.action !== 'subscribe') insert(this.publishTrie, c);
      if (rule.action !== 'publish') {
        insert(this.receiveTrie, c);
        this.subscribeRules.push(c);
      }
    }
  }

  /** May this client publish to `topic` (a device-side topic name)? */
  canPublish(topic: string): boolean {
    return this.decide(walk(this.publishTrie, topic.split('/'), 0));
  }

  /**
   * The per-packet form: `routed` is the topic as the broker routes it (the device topic behind
   * the tenant's mountpoint). Memoised on the routed topic, so a device publishing to its usual
   * topics costs one map lookup and allocates nothing.
   */
  canPublishRouted(routed: string, unmount: (routed: string) => string): boolean {
    let allowed = this.publishMemo.get(routed);
    if (allowed === undefined) {
      allowed = this.canPublish(unmount(routed));
      this.remember(this.publishMemo, routed, allowed);
    }
    return allowed;
  }

  /**
   * May this client receive a message routed on `routed`? Only consulted for clients holding a
   * subscription that a deny rule partly overlaps (see `checkSubscribe`).
   */
  canReceiveRouted(routed: string, unmount: (routed: string) => string): boolean {
    let allowed = this.receiveMemo.get(routed);
    if (allowed === undefined) {
      allowed = this.decide(walk(this.receiveTrie, unmount(routed).split('/'), 0));
      this.remember(this.receiveMemo, routed, allowed);
    }
    return allowed;
  }

  /**
   * A subscription is allowed when the strongest rule that covers the whole filter allows it
   * (a device allowed `sensors/a/#` may not subscribe to `sensors/#`). `partlyDenied` is set when
   * a deny rule of at least that priority matches part of it: deliveries on that subscription are
   * then filtered message by message.
   */
  checkSubscribe(filter: string): { allowed: boolean; partlyDenied: boolean } {
    const levels = filter.split('/');
    let best: Decision | null = null;
    for (const c of this.subscribeRules) {
      if (filterCovers(c.levels, levels)) best = strongest(best, new Decision(c.priority, c.deny));
    }
    const allowed = best ? !best.deny : this.defaultAllow;
    if (!allowed) return { allowed, partlyDenied: false };
    const floor = best ? best.priority : -Infinity;
    let partlyDenied = false;
    for (const c of this.subscribeRules) {
      if (c.deny && c.priority >= floor && filtersIntersect(c.levels, levels)) {
        partlyDenied = true;
        break;
      }
    }
    return { allowed, partlyDenied };
  }

  private decide(d: Decision | null): boolean {
    return d ? !d.deny : this.defaultAllow;
  }

  private remember(memo: Map<string, boolean>, topic: string, allowed: boolean): void {
    if (memo.size >= MEMO_LIMIT) memo.clear();
    memo.set(topic, allowed);
  }
}

