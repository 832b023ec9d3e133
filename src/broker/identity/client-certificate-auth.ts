import { Injectable } from '@nestjs/common';
import { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import { TenantCaIndex, verifyClientCertificate } from '../../certificates/client-certificate-verifier';
import type { BrokerClient } from '../session';
import { ConnectRefusal, IdentityService } from './identity.service';
import type { DeviceEntry, TenantRuntime } from './tenant-runtime';

export type CertificateCheck =
  | { ok: true; tenant: TenantRuntime; device: DeviceEntry; serialNumber: string }
  | { ok: false; returnCode: ConnectRefusal; reason: string; tenant?: TenantRuntime };

/**
 * The DER client certificate of a TLS connection (MQTTS, or the TLS socket under a secure
 * WebSocket), or undefined when the connection is not TLS or the client sent none.
 */
export function peerCertificateOf(client: BrokerClient): Buffer | undefined {
  const conn: unknown = client.conn;
  const socket: unknown = conn instanceof TLSSocket ? conn : client.req?.socket;
  if (!(socket instanceof TLSSocket)) return undefined;
  const raw = socket.getPeerCertificate()?.raw;
  return raw && raw.length > 0 ? raw : undefined;
}

/**
 * Mutual TLS at CONNECT: the issuing CA names the tenant, the CN the device. Every tenant's CA
 * is held here (loaded at start, kept current by the control plane through IdentityService's
 * change observers), so a connect costs one certificate parse and one signature check, plus a
 * tenant load on a cache miss; revocation is read from the tenant's in-memory certificate set.
 */
@Injectable()
export class ClientCertificateAuth {
  /** keyed by tenant id: a slug can be reused, an id never */
  private readonly index = new TenantCaIndex<string>();
  private readonly slugs = new Map<string, string>();
  /**
   * Asked when no known CA has the certificate's issuer name: finds a tenant CA this node has not
   * heard of (a change missed while the cluster bus was down) and adds it. Set by the control
   * plane; it must bound its own cost (negative cache), as any client can present any issuer.
   */
  resolveUnknownIssuer?: (issuerDn: string) => Promise<boolean>;

  constructor(private readonly identity: IdentityService) {}

  setTenantCa(tenantId: string, slug: string, caCertificatePem: string): void {
    this.index.set(tenantId, caCertificatePem);
    this.slugs.set(tenantId, slug);
  }

  deleteTenantCa(tenantId: string): void {
    this.index.delete(tenantId);
    this.slugs.delete(tenantId);
  }

  hasTenantCa(tenantId: string): boolean {
    return this.slugs.has(tenantId);
  }

  get size(): number {
    return this.index.size;
  }

  /**
   * Checks a presented client certificate. A certificate that does not authenticate refuses the
   * connection whatever else the CONNECT carries (CONNACK 5); a username that does not name the
   * certificate's device is a bad user name (CONNACK 4).
   */
  async check(certificateDer: Uint8Array, username: string | undefined | null, now = Date.now()): Promise<CertificateCheck> {
    let verdict = verifyClientCertificate(certificateDer, this.index.lookup, now);
    if (!verdict.ok && verdict.reason === 'unknown-issuer' && this.resolveUnknownIssuer) {
      const issuer = new X509Certificate(certificateDer).issuer;
      if (await this.resolveUnknownIssuer(issuer)) verdict = verifyClientCertificate(certificateDer, this.index.lookup, now);
    }
    if (!verdict.ok) return { ok: false, returnCode: 5, reason: `certificate-${verdict.reason}` };
    const tenantId = verdict.tenantKey;
    const slug = this.slugs.get(tenantId);
    const tenant = slug === undefined ? null : await this.identity.tenantBySlug(slug);
    // the tenant went away (or its slug was taken again) while we looked it up
    if (!tenant || tenant.id !== tenantId || tenant.deleted) {
      return { ok: false, returnCode: 5, reason: 'certificate-unknown-issuer' };
    }
    const deviceName = verdict.commonName;
    if (username !== undefined && username !== null && username !== `${tenant.slug}:${deviceName}`) {
      return { ok: false, returnCode: 4, reason: 'certificate-username-mismatch', tenant };
    }
    const device = tenant.devices.get(deviceName);
    if (!device) return { ok: false, returnCode: 5, reason: 'certificate-unknown-device', tenant };
    if (!tenant.certificateValidFor(verdict.serialNumber, deviceName)) {
      return { ok: false, returnCode: 5, reason: 'certificate-revoked', tenant };
    }
    if (!device.enabled) return { ok: false, returnCode: 5, reason: 'device-disabled', tenant };
    return { ok: true, tenant, device, serialNumber: verdict.serialNumber };
  }
}
