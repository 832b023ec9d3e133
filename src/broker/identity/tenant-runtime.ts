import { TenantAcl, type AclRuleInput, type ClientAcl } from '../../acl/compiled-acl';
import type { TenantLimits } from '../../tenants/limits';
import { LimitHits, TenantLimitState } from '../limits/limit-state';
import { Mountpoint } from '../tenancy/mountpoint';
import type { CertificateSnapshot, DeviceSnapshot, TenantSnapshot } from './snapshot';
import type { BrokerClient } from '../session';

export interface DeviceEntry extends DeviceSnapshot {
  /** keyed digest (IdentityService.digestOf) of the last password bcrypt accepted for this entry: reconnects skip bcrypt */
  verifiedDigest?: Buffer;
  /** the bcrypt comparison in progress for this entry, shared by concurrent connects */
  verifying?: { digest: Buffer; result: Promise<boolean> };
}

/** Per-tenant counters, read by metrics and $SYS; plain integer fields, bumped on the hot path. */
export class TenantCounters {
  messagesIn = 0;
  messagesOut = 0;
  bytesIn = 0;
  messagesDropped = 0;
  connectsAccepted = 0;
  connectsRefused = 0;
  bytesOut = 0;
  /** by reason (the `reason` of HookEvents); read by metrics, bumped off the per-message path */
  readonly connectsRefusedBy: Record<string, number> = Object.create(null);
  readonly messagesDroppedBy: Record<string, number> = Object.create(null);
  /** how often each limit refused, throttled or cut something (metrics) */
  readonly limitHits = new LimitHits();
}

/**
 * A tenant as the data plane holds it. Live clients keep a reference to it, so it is updated in
 * place when the control plane announces a change.
 */
export class TenantRuntime {
  readonly mountpoint: Mountpoint;
  slug: string;
  limits: TenantLimits;
  requireClientCertificates: boolean;
  defaultAllow: boolean;
  devices = new Map<string, DeviceEntry>();
  rules: AclRuleInput[] = [];
  /**
   * Active client certificates: serial -> id of the device row it was issued to. A certificate
   * authenticates only while its serial maps to the id of the device named by its CN, so a
   * revoked one, or one of a deleted device whose name was taken again, is refused.
   */
  activeCertificates = new Map<string, string>();
  /** bumped whenever `rules` or `defaultAllow` change; clients recompile their ACL lazily */
  ruleGeneration = 0;
  /** the rules compiled for the current generation, shared by the clients (see compileAcl) */
  private compiledAcl: TenantAcl | null = null;
  readonly clients = new Set<BrokerClient>();
  readonly counters = new TenantCounters();
  /** rate budget, retained-message ledger and connection count of the limits (limits/) */
  readonly limitState = new TenantLimitState();
  deleted = false;

  constructor(snapshot: TenantSnapshot) {
    this.mountpoint = new Mountpoint(snapshot.id);
    this.slug = snapshot.slug;
    this.limits = snapshot.limits;
    this.requireClientCertificates = snapshot.requireClientCertificates;
    this.defaultAllow = snapshot.defaultAclPermission === 'allow';
    this.setDevices(snapshot.devices);
    this.rules = snapshot.rules;
    this.setCertificates(snapshot.certificates);
  }

  get id(): string {
    return this.mountpoint.tenantId;
  }

  setDevices(devices: DeviceSnapshot[]): void {
    this.devices = new Map(devices.map((d) => [d.name, { ...d }]));
  }

  updateSettings(snapshot: TenantSnapshot): void {
    this.slug = snapshot.slug;
    this.limits = snapshot.limits;
    this.requireClientCertificates = snapshot.requireClientCertificates;
    const defaultAllow = snapshot.defaultAclPermission === 'allow';
    if (defaultAllow !== this.defaultAllow) {
      this.defaultAllow = defaultAllow;
      this.ruleGeneration++;
    }
  }

  setCertificates(certificates: CertificateSnapshot[]): void {
    this.activeCertificates = new Map(certificates.map((c) => [c.serialNumber, c.deviceId]));
  }

  /** Whether the certificate `serialNumber` is active and belongs to the current device `deviceName`. */
  certificateValidFor(serialNumber: string, deviceName: string): boolean {
    const device = this.devices.get(deviceName);
    return device !== undefined && this.activeCertificates.get(serialNumber) === device.id;
  }

  setRules(rules: AclRuleInput[]): void {
    this.rules = rules;
    this.ruleGeneration++;
  }

  /**
   * The ACL of one client: the tenant's rules, compiled once per rule generation and shared
   * (placeholders are matched per client during the walk), plus the client's own memo.
   */
  compileAcl(deviceName: string | null, deviceClientId: string): ClientAcl {
    let compiled = this.compiledAcl;
    if (compiled === null || compiled.generation !== this.ruleGeneration) {
      compiled = this.compiledAcl = new TenantAcl(this.rules, this.defaultAllow, this.ruleGeneration);
    }
    return compiled.forClient(deviceName, deviceClientId);
  }
}
