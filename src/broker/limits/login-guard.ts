import type { AppConfig } from '../../config/config';

export type LoginGuardOptions = AppConfig['authFail'];

/** Why a login was refused before its password was even checked. */
export type Lockout = 'address' | 'device';

interface Entry {
  /** times (ms) of the failures inside the window, oldest first; never longer than the threshold */
  failures: number[];
  lockedUntil: number;
}

/**
 * Failures per key inside a sliding window; `threshold` of them lock the key for `lockoutMs`.
 * Memory is bounded: at `maxEntries` the entry touched longest ago is forgotten (Map order is
 * insertion order, and every update re-inserts).
 */
export class FailureTracker {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly threshold: number,
    private readonly windowMs: number,
    private readonly lockoutMs: number,
    private readonly maxEntries: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  isLocked(key: string, now: number): boolean {
    const entry = this.entries.get(key);
    if (entry === undefined) return false;
    if (entry.lockedUntil > now) return true;
    if (entry.lockedUntil !== 0 || this.prune(entry, now) === 0) this.entries.delete(key);
    return false;
  }

  /** Records a failure; returns how many there are in the window (the threshold when it locks). */
  fail(key: string, now: number): number {
    let entry = this.entries.get(key);
    if (entry === undefined) {
      if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
      entry = { failures: [], lockedUntil: 0 };
    } else {
      this.entries.delete(key);
      if (entry.lockedUntil !== 0 && entry.lockedUntil <= now) entry.lockedUntil = 0;
      this.prune(entry, now);
    }
    this.entries.set(key, entry);
    entry.failures.push(now);
    const count = entry.failures.length;
    if (count >= this.threshold) {
      entry.lockedUntil = now + this.lockoutMs;
      entry.failures = [];
    }
    return count;
  }

  forget(key: string): void {
    this.entries.delete(key);
  }

  private prune(entry: Entry, now: number): number {
    const horizon = now - this.windowMs;
    let drop = 0;
    while (drop < entry.failures.length && entry.failures[drop] <= horizon) drop++;
    if (drop > 0) entry.failures.splice(0, drop);
    return entry.failures.length;
  }
}

/**
 * Failed-login protection (DESIGN.md "Failed logins"), in the spirit of fail2ban: failures from
 * one address, and for one username from one address, are counted in a sliding window. Each
 * failure is answered after a delay that doubles with the failures so far; at the threshold
 * the address (or the address/device pair) is locked out and refused before any bcrypt work,
 * even with the right password. The device itself keeps working from other addresses.
 */
export class LoginGuard {
  private readonly byAddress: FailureTracker;
  private readonly byPair: FailureTracker;
  /** locks started (metrics) */
  lockouts = 0;

  constructor(private readonly options: LoginGuardOptions) {
    const { windowMs, lockoutMs, maxTracked } = options;
    this.byAddress = new FailureTracker(options.maxPerAddress, windowMs, lockoutMs, maxTracked);
    this.byPair = new FailureTracker(options.maxPerDevice, windowMs, lockoutMs, maxTracked);
  }

  /** Entries held, for the memory bound's tests. */
  get tracked(): number {
    return this.byAddress.size + this.byPair.size;
  }

  lockedOut(address: string | null, username: string, now = Date.now()): Lockout | null {
    // nothing failed lately: no key to build (every CONNECT asks)
    if (this.byAddress.size === 0 && this.byPair.size === 0) return null;
    const addr = addressKey(address);
    if (this.byAddress.isLocked(addr, now)) return 'address';
    if (this.byPair.isLocked(pairKey(addr, username), now)) return 'device';
    return null;
  }

  /** Records a failed password; returns how long to hold back the refusal (ms). */
  failed(address: string | null, username: string, now = Date.now()): number {
    const addr = addressKey(address);
    const fromAddress = this.byAddress.fail(addr, now);
    const forPair = this.byPair.fail(pairKey(addr, username), now);
    if (fromAddress >= this.options.maxPerAddress) this.lockouts++;
    if (forPair >= this.options.maxPerDevice) this.lockouts++;
    const n = Math.max(fromAddress, forPair);
    // 1, 2, 4... times the base, capped at 16 times
    return this.options.delayMs * 2 ** Math.min(n - 1, 4);
  }

  /** A right password clears the pair's failures (not the address's: one known password must not
   * let an address keep guessing others). */
  succeeded(address: string | null, username: string): void {
    if (this.byPair.size === 0) return;
    this.byPair.forget(pairKey(addressKey(address), username));
  }
}

function pairKey(addressKey: string, username: string): string {
  // longer usernames can't name a device (slug 40 + ':' + name 64): cut them, bounding the key
  return addressKey + '\n' + (username.length > 128 ? username.slice(0, 128) : username);
}

/**
 * The unit an address is counted in: IPv4 as is (IPv4-mapped IPv6 unwrapped), IPv6 by /64, the
 * block one subscriber usually holds (else one host could rotate through 2^64 addresses).
 */
export function addressKey(address: string | null | undefined): string {
  if (!address) return '-';
  const zone = address.indexOf('%');
  const a = (zone >= 0 ? address.slice(0, zone) : address).toLowerCase();
  if (!a.includes(':')) return a;
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  const [head, tail] = a.split('::', 2);
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(Math.max(0, 8 - h.length - t.length)).fill('0'), ...t];
  return groups
    .slice(0, 4)
    .map((g) => parseInt(g || '0', 16).toString(16))
    .join(':') + '::/64';
}
