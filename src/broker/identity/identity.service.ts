import { Inject, Injectable, Logger } from '@nestjs/common';
import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { APP_CONFIG, AppConfig } from '../../config/config';
import { comparePassword, hashPassword } from '../../common/bcrypt-pool';
import { LoginGuard } from '../limits/login-guard';
import { isSysFilter } from '../tenancy/mountpoint';
import type { BrokerClient } from '../session';
import { DeviceEntry, TenantRuntime } from './tenant-runtime';
import { Invalidation, TENANT_SOURCE, TenantSource } from './snapshot';
import { deviceNameOf, tenantSlugOf } from './username';

export type ConnectRefusal = 2 | 3 | 4 | 5;

export type CredentialResult =
  | { ok: true; tenant: TenantRuntime; device: DeviceEntry | null }
  | { ok: false; returnCode: ConnectRefusal; reason: string; tenant?: TenantRuntime };

const NEGATIVE_TTL_MS = 1000;

/**
 * The in-memory identity snapshot: tenants, devices and ACL rules, loaded on a cache miss (one
 * query at connect time) and updated in place when the control plane announces a change.
 * Nothing here runs per message.
 */
@Injectable()
export class IdentityService {
  private readonly logger = new Logger('Identity');
  private readonly bySlug = new Map<string, TenantRuntime>();
  private readonly byId = new Map<string, TenantRuntime>();
  private readonly loading = new Map<string, Promise<TenantRuntime | null>>();
  private readonly unknownSlugs = new Map<string, number>();
  /** keys the verified-credential digests; per process, so nothing reusable is ever stored */
  private readonly digestKey = randomBytes(32);
  private dummyHash?: Promise<string>;
  /** bcrypt comparisons started: what a reconnect storm must not pay again (metrics, tests) */
  bcryptComparisons = 0;
  /** failed-login protection, consulted before any bcrypt work */
  readonly loginGuard: LoginGuard;
  /** called to disconnect clients; set by the broker */
  kick: (clients: BrokerClient[], reason: string) => void = () => undefined;
  /** other per-node caches that follow the same changes (the tenant CA index) */
  private readonly observers: ((change: Invalidation) => Promise<void>)[] = [];

  constructor(
    @Inject(TENANT_SOURCE) private readonly source: TenantSource,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.loginGuard = new LoginGuard(config.authFail);
  }

  cachedTenants(): IterableIterator<TenantRuntime> {
    return this.byId.values();
  }

  cachedTenant(id: string): TenantRuntime | undefined {
    return this.byId.get(id);
  }

  async tenantBySlug(slug: string): Promise<TenantRuntime | null> {
    const cached = this.bySlug.get(slug);
    if (cached) return cached;
    const missAt = this.unknownSlugs.get(slug);
    if (missAt !== undefined && Date.now() - missAt < NEGATIVE_TTL_MS) return null;
    let pending = this.loading.get(slug);
    if (!pending) {
      pending = this.load(slug).finally(() => this.loading.delete(slug));
      this.loading.set(slug, pending);
    }
    return pending;
  }

  /** The tenant with internal id `id`, loaded on a cache miss (REST paths into the data plane). */
  async tenantById(id: string): Promise<TenantRuntime | null> {
    const cached = this.byId.get(id);
    if (cached) return cached;
    const snapshot = await this.source.loadTenant({ id });
    return snapshot ? this.tenantBySlug(snapshot.slug) : null;
  }

  private async load(slug: string): Promise<TenantRuntime | null> {
    const snapshot = await this.source.loadTenant({ slug });
    if (!snapshot) {
      if (this.unknownSlugs.size > 10_000) this.unknownSlugs.clear();
      this.unknownSlugs.set(slug, Date.now());
      return null;
    }
    // a concurrent invalidation may have loaded it meanwhile
    const existing = this.byId.get(snapshot.id);
    if (existing) return existing;
    const tenant = new TenantRuntime(snapshot);
    this.bySlug.set(slug, tenant);
    this.byId.set(tenant.id, tenant);
    return tenant;
  }

  /**
   * Checks a username/password CONNECT from `address`. The answer never tells which part was
   * wrong; failures are answered late and, repeated, lock the address (or the address/device
   * pair) out before any bcrypt work (LoginGuard).
   */
  async checkPassword(username: string, password: Buffer | undefined, address: string | null = null): Promise<CredentialResult> {
    const lockout = this.loginGuard.lockedOut(address, username);
    if (lockout !== null) {
      const slug = tenantSlugOf(username);
      const tenant = slug !== null ? this.bySlug.get(slug) : undefined;
      return { ok: false, returnCode: 5, reason: `locked-out-${lockout}`, tenant };
    }
    const result = await this.verifyPassword(username, password);
    if (result.ok) {
      this.loginGuard.succeeded(address, username);
    } else if (result.reason === 'bad-credentials') {
      const delayMs = this.loginGuard.failed(address, username);
      if (delayMs > 0) await sleep(delayMs);
    }
    return result;
  }

  /**
   * A reconnect with the password this node last verified for the device, answered from memory
   * without a promise (most CONNECTs of a reconnect storm); null when it needs checkPassword: an
   * unknown or uncached tenant, a password not verified yet or a different one, a lockout.
   */
  checkVerifiedPassword(username: string, password: Buffer | undefined, address: string | null): CredentialResult | null {
    const slug = tenantSlugOf(username);
    if (slug === null || password === undefined) return null;
    const tenant = this.bySlug.get(slug);
    if (tenant === undefined || tenant.requireClientCertificates) return null;
    const device = tenant.devices.get(deviceNameOf(username) as string);
    const verified = device?.verifiedDigest;
    if (device === undefined || verified === undefined || !device.enabled || !device.passwordHash) return null;
    if (!timingSafeEqual(verified, this.digestOf(password))) return null;
    if (this.loginGuard.lockedOut(address, username) !== null) return null;
    this.loginGuard.succeeded(address, username);
    return { ok: true, tenant, device };
  }

  /**
   * SHA-256 of the process's random key and the password: a keyed digest, so one found in memory
   * can't be looked up in precomputed tables. Not HMAC: nobody ever sees these digests (length
   * extension is moot), and the one-shot hash costs ~2 us where createHmac cost 10-15 us per
   * CONNECT in a reconnect storm (OpenSSL 3 builds an HMAC context each time).
   */
  private digestOf(password: Buffer): Buffer {
    return hash('sha256', Buffer.concat([this.digestKey, password]), 'buffer');
  }

  private async verifyPassword(username: string, password: Buffer | undefined): Promise<CredentialResult> {
    const slug = tenantSlugOf(username);
    const deviceName = deviceNameOf(username) ?? '';
    const tenant = slug ? await this.tenantBySlug(slug) : null;
    const device = tenant?.devices.get(deviceName);
    if (!tenant || !device || !device.enabled || !device.passwordHash || !password) {
      // spend the same time as a real check, so unknown names can't be told from wrong passwords
      this.bcryptComparisons++;
      await comparePassword(password?.toString('utf8') ?? '', await this.getDummyHash());
      return { ok: false, returnCode: 4, reason: 'bad-credentials', tenant: tenant ?? undefined };
    }
    if (tenant.requireClientCertificates) {
      return { ok: false, returnCode: 5, reason: 'certificate-required', tenant };
    }
    const digest = this.digestOf(password);
    const verified = device.verifiedDigest;
    let ok = verified !== undefined && timingSafeEqual(verified, digest);
    if (!ok) {
      ok = await this.compareOnce(device, digest, password);
      if (ok) device.verifiedDigest = digest;
    }
    // the device may have been changed or removed while bcrypt ran
    if (!ok || tenant.deleted || tenant.devices.get(deviceName) !== device) {
      return { ok: false, returnCode: 4, reason: 'bad-credentials', tenant };
    }
    return { ok: true, tenant, device };
  }

  /**
   * One bcrypt comparison per device and password at a time: a storm of connects with the same
   * credentials before the first has been verified waits for that one (bcrypt runs on libuv's
   * pool, never on the event loop).
   */
  private compareOnce(device: DeviceEntry, digest: Buffer, password: Buffer): Promise<boolean> {
    const pending = device.verifying;
    if (pending !== undefined && timingSafeEqual(pending.digest, digest)) return pending.result;
    this.bcryptComparisons++;
    const result = comparePassword(password.toString('utf8'), device.passwordHash as string);
    const entry = { digest, result };
    device.verifying = entry;
    const clear = (): void => {
      if (device.verifying === entry) device.verifying = undefined;
    };
    result.then(clear, clear);
    return result;
  }

  private getDummyHash(): Promise<string> {
    return (this.dummyHash ??= hashPassword(randomBytes(16).toString('hex'), this.config.bcryptCost));
  }

  /** Registers a cache that must see every change too, also those for tenants not cached here. */
  observe(observer: (change: Invalidation) => Promise<void>): void {
    this.observers.push(observer);
  }

  /** Applies a change announced by the control plane (this node's REST API or another node's). */
  async apply(change: Invalidation): Promise<void> {
    for (const observer of this.observers) await observer(change);
    if (change.kind === 'tenant') this.unknownSlugs.clear();
    const tenant = this.byId.get(change.tenantId);
    if (!tenant) return; // not cached here: the next connect loads it fresh
    switch (change.kind) {
      case 'tenant-deleted':
        this.forget(tenant);
        this.kick([...tenant.clients], 'tenant deleted');
        return;
      case 'tenant': {
        const snapshot = await this.source.loadTenant({ id: tenant.id });
        if (!snapshot) {
          this.forget(tenant);
          this.kick([...tenant.clients], 'tenant deleted');
          return;
        }
        tenant.updateSettings(snapshot);
        if (tenant.requireClientCertificates) {
          this.kick(
            [...tenant.clients].filter((c) => c.tenantSession?.authMethod === 'password'),
            'client certificates now required',
          );
        }
        this.recheckSubscriptions(tenant);
        return;
      }
      case 'device': {
        const device = await this.source.loadDevice(tenant.id, change.name);
        if (device) tenant.devices.set(device.name, { ...device });
        else tenant.devices.delete(change.name);
        if (change.disconnect || !device || !device.enabled) {
          this.kick(
            [...tenant.clients].filter((c) => c.tenantSession?.deviceName === change.name),
            'device changed',
          );
        }
        return;
      }
      case 'rules':
        tenant.setRules(await this.source.loadRules(tenant.id));
        this.recheckSubscriptions(tenant);
        return;
      case 'certificates': {
        tenant.setCertificates(await this.source.loadCertificates(tenant.id));
        // sessions opened with a certificate that is no longer active (revoked, device deleted)
        const revoked = [...tenant.clients].filter((c) => {
          const s = c.tenantSession;
          return s?.authMethod === 'certificate' && !tenant.certificateValidFor(s.certificateSerial ?? '', s.deviceName ?? '');
        });
        if (revoked.length) this.kick(revoked, 'certificate revoked');
        return;
      }
    }
  }

  private forget(tenant: TenantRuntime): void {
    tenant.deleted = true;
    this.byId.delete(tenant.id);
    if (this.bySlug.get(tenant.slug) === tenant) this.bySlug.delete(tenant.slug);
  }

  /**
   * After a rule change, live subscriptions must still be allowed: clients holding one that no
   * longer is are disconnected in one batch (as mosquitto's dynamic-security kick list does).
   */
  private recheckSubscriptions(tenant: TenantRuntime): void {
    const revoked: BrokerClient[] = [];
    for (const client of tenant.clients) {
      const session = client.tenantSession;
      if (!session) continue;
      const acl = session.currentAcl();
      let readFiltered = false;
      let lost = false;
      for (const routed of Object.keys(client.subscriptions)) {
        const filter = tenant.mountpoint.unmount(routed);
        if (isSysFilter(filter)) continue; // no rule grants these (hooks.ts)
        const check = acl.checkSubscribe(filter);
        if (!check.allowed) {
          lost = true;
          break;
        }
        readFiltered ||= check.partlyDenied;
      }
      session.readFiltered = readFiltered;
      if (lost) revoked.push(client);
    }
    if (revoked.length) {
      this.logger.log(`disconnecting ${revoked.length} client(s) of ${tenant.slug}: subscriptions no longer allowed`);
      this.kick(revoked, 'subscription no longer allowed');
    }
  }
}
