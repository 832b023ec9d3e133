import { Logger } from '@nestjs/common';
import type { AedesPublishPacket, ConnectPacket, PublishPacket, Subscription } from 'aedes';
import { topicFilterError, topicNameError } from '../acl/topic-filter';
import { validateConnect } from './protocol';
import type { AppConfig } from '../config/config';
import { newSecret } from '../common/ids';
import { ThrottledLog } from '../common/throttled-log';
import { ClientCertificateAuth, peerCertificateOf } from './identity/client-certificate-auth';
import type { CredentialResult, IdentityService } from './identity/identity.service';
import type { TenantRuntime } from './identity/tenant-runtime';
import type { BrokerLimits } from './limits/broker-limits';
import { BrokerClient, remoteAddressOf, TenantSession } from './session';
import { DROPPED_TOPIC, isSysFilter, Mountpoint } from './tenancy/mountpoint';

type AuthError = Error & { returnCode: number };

const refusal = (returnCode: number, reason: string): AuthError => Object.assign(new Error(reason), { returnCode });

/** aedes' authenticate callback: (null, true) to accept, (error, null) to refuse */
function answer(err: AuthError | null, done: (err: AuthError | null, ok: boolean | null) => void): void {
  if (err) done(err, null);
  else done(null, true);
}

interface InboundPacket {
  cmd: string;
  topic?: string;
  subscriptions?: { topic: string }[];
  unsubscriptions?: string[];
}

/**
 * Rewrites the topics of an inbound packet into the tenant's mountpoint, after checking them on
 * the device side (a mounted topic is never empty, so checks must come first). Returns an error.
 */
export function mountInbound(mp: Mountpoint, packet: InboundPacket): string | null {
  switch (packet.cmd) {
    case 'publish': {
      const topic = packet.topic as string;
      // wildcards are refused by aedes on the mounted topic; the prefix has none
      if (topic.length === 0) return 'empty topic in PUBLISH';
      if (topic.includes('\u0000')) return 'U+0000 in PUBLISH topic';
      packet.topic = mp.mount(topic);
      return null;
    }
    case 'subscribe': {
      for (const sub of packet.subscriptions ?? []) {
        const err = topicFilterError(sub.topic);
        if (err) return `SUBSCRIBE filter ${err}`;
        sub.topic = mp.mount(sub.topic);
      }
      return null;
    }
    case 'unsubscribe': {
      const list = packet.unsubscriptions ?? [];
      for (let i = 0; i < list.length; i++) {
        const err = topicFilterError(list[i]);
        if (err) return `UNSUBSCRIBE filter ${err}`;
        list[i] = mp.mount(list[i]);
      }
      return null;
    }
    default:
      return null;
  }
}

const SYS_SUBSCRIBE = Object.freeze({ allowed: true, partlyDenied: false });

/** Events the hooks report; metrics and the audit log subscribe to them. */
export interface HookEvents {
  connectRefused(client: BrokerClient, tenant: TenantRuntime | undefined, reason: string, returnCode: number): void;
  publishDropped(session: TenantSession, reason: string): void;
  /** the connection of an authenticated client closed (one listener per socket does it all) */
  sessionClosed(client: BrokerClient, session: TenantSession): void;
}

/**
 * aedes' hooks, bound to the tenancy model. The per-packet ones (authorizePublish,
 * authorizeForward, published) only read memory and allocate nothing on their usual path.
 */
export class TenantHooks {
  private readonly logger = new Logger('MQTT');
  private readonly checkFailures = new ThrottledLog(this.logger);

  constructor(
    private readonly identity: IdentityService,
    private readonly config: AppConfig,
    private readonly events: HookEvents,
    private readonly certificates: ClientCertificateAuth,
    private readonly limits: BrokerLimits,
  ) {}

  preConnect = (client: BrokerClient, packet: ConnectPacket, done: (err: Error | null, ok: boolean) => void): void => {
    const verdict = validateConnect(packet);
    if (verdict?.action === 'close') return done(new Error('malformed CONNECT'), false);
    // a refusal with a CONNACK is answered by authenticate: aedes writes the CONNACK from there
    // before closing (a CONNACK written here could be cut off by the close on TLS)
    client.connectRefusal = verdict?.action === 'connack' ? verdict.returnCode : undefined;
    // read by admit (and by the audit of a refusal); dropped once admitted, so that an idle
    // connection does not keep its CONNECT (and password) for life
    client.connectPacket = packet;
    done(null, true);
  };

  authenticate = (
    client: BrokerClient,
    username: string | undefined,
    password: Buffer | undefined,
    done: (err: AuthError | null, ok: boolean | null) => void,
  ): void => {
    const certificate = peerCertificateOf(client);
    // a reconnect with a password this node already verified is answered synchronously
    if (client.connectRefusal === undefined && username && certificate === undefined) {
      // done() runs outside the try: an exception from aedes' side must not be answered twice
      let verdict: AuthError | null | undefined;
      try {
        const known = this.identity.checkVerifiedPassword(username, password, remoteAddressOf(client));
        if (known !== null) verdict = this.admit(client, known, 'password', null);
      } catch (err) {
        return this.failClosed(client, err, done);
      }
      if (verdict !== undefined) return answer(verdict, done);
    }
    // the closures only on this path: the synchronous one above allocates none
    this.authenticateAsync(client, username, password, certificate).then(
      (err) => answer(err, done),
      (err: unknown) => this.failClosed(client, err, done),
    );
  };

  /** Whatever we could not check (database unreachable...) is refused: one log line while it lasts, not one per attempt. */
  private failClosed(client: BrokerClient, err: unknown, done: (err: AuthError | null, ok: boolean | null) => void): void {
    this.checkFailures.error(`connect check failed, refusing with CONNACK 3: ${(err as Error).message}`);
    this.events.connectRefused(client, undefined, 'check-failed', 3);
    done(refusal(3, 'server unavailable'), null);
  }

  private async authenticateAsync(
    client: BrokerClient,
    username: string | undefined,
    password: Buffer | undefined,
    certificate: Buffer | undefined,
  ): Promise<AuthError | null> {
    if (client.connectRefusal !== undefined) {
      this.events.connectRefused(client, undefined, 'protocol', client.connectRefusal);
      return refusal(client.connectRefusal, 'protocol');
    }
    // a zero-length username without a password is no credential at all [MQTT-3.1.3-11 allows it]
    if (username === '' && password === undefined) username = undefined;
    if (certificate !== undefined) {
      // a presented certificate decides alone: an invalid one is refused even with a good password
      const checked = await this.certificates.check(certificate, username);
      return this.admit(client, checked, 'certificate', checked.ok ? checked.serialNumber : null);
    }
    if (username === undefined || username === null) {
      const slug = this.config.anonymousTenant;
      const tenant = slug ? await this.identity.tenantBySlug(slug) : null;
      const result: CredentialResult = tenant
        ? { ok: true, tenant, device: null }
        : { ok: false, returnCode: 5, reason: 'anonymous' };
      return this.admit(client, result, 'anonymous', null);
    }
    const result = await this.identity.checkPassword(username, password, remoteAddressOf(client));
    return this.admit(client, result, 'password', null);
  }

  /** Accepts an identified client into its tenant, or refuses it (tenant limits, client id, will). */
  private admit(
    client: BrokerClient,
    result: CredentialResult,
    authMethod: TenantSession['authMethod'],
    certificateSerial: string | null,
  ): AuthError | null {
    const refuse = (tenant: TenantRuntime | undefined, returnCode: number, reason: string): AuthError => {
      this.events.connectRefused(client, tenant, reason, returnCode);
      return refusal(returnCode, reason);
    };
    if (!result.ok) return refuse(result.tenant, result.returnCode, result.reason);
    const { tenant, device } = result;
    if (!this.limits.hasRoom(tenant)) return refuse(tenant, 3, 'max-connections');

    const connect = client.connectPacket;
    const clean = connect?.clean !== false;
    let deviceClientId = connect?.clientId ?? '';
    if (deviceClientId === '') {
      // [MQTT-3.1.3-8]: an empty id needs a clean session; [MQTT-3.1.3-6]: otherwise one is assigned
      if (!clean) return refuse(tenant, 2, 'empty-client-id');
      deviceClientId = 'auto-' + newSecret(12);
    }
    const mountpoint = tenant.mountpoint;
    const acl = tenant.compileAcl(device ? device.name : null, deviceClientId);
    const will = client._will;
    if (will) {
      const err = topicNameError(will.topic);
      if (err) return refuse(tenant, 5, 'bad-will-topic');
      // like mosquitto, a will the device could not publish refuses the connection
      if (will.topic.startsWith('$SYS') || !acl.canPublish(will.topic)) return refuse(tenant, 5, 'will-denied');
      will.topic = mountpoint.mount(will.topic);
    }

    client.id = mountpoint.clientId(deviceClientId);
    client.unmountTopic = mountpoint.unmount;
    client.tenantSession = new TenantSession(
      tenant,
      device ? device.name : null,
      deviceClientId,
      acl,
      remoteAddressOf(client),
      clean,
      connect?.keepalive ?? 0,
      connect?.protocolVersion ?? 4,
      authMethod,
      certificateSerial,
    );
    client.connectPacket = undefined;
    // packets pipelined behind the CONNECT were parsed before the tenant was known
    const queued = client._parser._queue as InboundPacket[] | null;
    if (queued) {
      for (const packet of queued) {
        const err = mountInbound(mountpoint, packet);
        if (err) {
          setImmediate(() => client.emit('error', new Error(err)));
          break;
        }
      }
    }
    this.limits.attach(client, client.tenantSession);
    tenant.counters.connectsAccepted++;
    return null;
  }

  authorizePublish = (client: BrokerClient | null, packet: PublishPacket, done: (err?: Error | null) => void): void => {
    // wills of a node that died are published by a survivor with no client: they were checked
    // and mounted when their client connected
    if (client === null) return done(null);
    const session = client.tenantSession;
    if (session === undefined) return done(new Error('not authenticated'));
    if (packet === client.will) return done(null);
    const tooLarge = this.limits.checkPayload(session, packet.payload);
    if (tooLarge !== null) return done(tooLarge);
    const mountpoint = session.tenant.mountpoint;
    const topic = packet.topic;
    let reason: string | null = null;
    if (mountpoint.isSys(topic)) reason = 'sys-topic';
    else if (!session.currentAcl().canPublishRouted(topic, mountpoint.unmount)) reason = 'acl-denied';
    if (reason !== null) {
      // dropped, yet acknowledged as usual and the connection kept (DESIGN.md: denied publish)
      packet.topic = DROPPED_TOPIC;
      packet.retain = false;
      this.events.publishDropped(session, reason);
    }
    this.limits.admit(client, session, done);
  };

  authorizeSubscribe = (
    client: BrokerClient,
    sub: Subscription,
    done: (err: Error | null, sub?: Subscription | null) => void,
  ): void => {
    const session = client.tenantSession;
    if (session === undefined) return done(new Error('not authenticated'));
    const tenant = session.tenant;
    const filter = tenant.mountpoint.unmount(sub.topic);
    // the tenant's own $SYS figures are readable by every device, without an ACL rule
    const check = isSysFilter(filter) ? SYS_SUBSCRIBE : session.currentAcl().checkSubscribe(filter);
    if (!check.allowed) return done(null, null);
    if (
      client.subscriptions[sub.topic] === undefined &&
      Object.keys(client.subscriptions).length >= tenant.limits.maxSubscriptionsPerClient
    ) {
      tenant.counters.limitHits.maxSubscriptionsPerClient++;
      return done(null, null);
    }
    if (check.partlyDenied) session.readFiltered = true;
    done(null, sub);
  };

  authorizeForward = (client: BrokerClient, packet: AedesPublishPacket): AedesPublishPacket | null => {
    const session = client.tenantSession;
    if (session === undefined) return null;
    const mountpoint = session.tenant.mountpoint;
    if (
      session.readFiltered &&
      !mountpoint.isSys(packet.topic) &&
      !session.currentAcl().canReceiveRouted(packet.topic, mountpoint.unmount)
    ) {
      return null;
    }
    session.messagesOut++;
    session.tenant.counters.messagesOut++;
    this.limits.forwarded(client, session, packet);
    return packet;
  };

  published = (packet: AedesPublishPacket, client: BrokerClient | null, done: (err?: Error | null) => void): void => {
    const session = client?.tenantSession;
    if (session !== undefined && packet.topic !== DROPPED_TOPIC) {
      session.messagesIn++;
      const counters = session.tenant.counters;
      counters.messagesIn++;
      counters.bytesIn += packet.payload.length;
    }
    done(null);
  };
}
