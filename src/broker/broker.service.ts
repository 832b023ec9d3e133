import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { Aedes } from 'aedes';
import { createServer as createHttpServer, IncomingMessage, Server as HttpServer, ServerResponse } from 'node:http';
import { createServer as createHttpsServer, Server as HttpsServer } from 'node:https';
import { AddressInfo, createServer as createNetServer, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, Server as TlsServer } from 'node:tls';
import { createWebSocketStream, WebSocketServer } from 'ws';
import { APP_CONFIG, AppConfig } from '../config/config';
import type { BrokerBackend } from './backend';
import { HookEvents, mountInbound, TenantHooks } from './hooks';
import { hardenClient, MAX_TOPIC_LEVELS, type DropReason } from './protocol';
import { ClientCertificateAuth } from './identity/client-certificate-auth';
import { IdentityService } from './identity/identity.service';
import { BrokerLimits } from './limits/broker-limits';
import type { TenantRuntime } from './identity/tenant-runtime';
import { requireProxyHeader } from './proxy-protocol';
import { SERVER_TLS, serverTlsOptions, ServerTlsProvider } from './server-tls';
import type { BrokerClient, TenantSession } from './session';

/** DESIGN.md: before CONNECT is accepted, anything over 64 KiB closes the socket. */
const MAX_PACKET_SIZE_BEFORE_CONNECT = 64 * 1024;

type PacketListener = (this: unknown, packet: unknown) => void;

/** aedes' parser 'packet' listener (lib/client.js `enqueue`), taken from the first client. */
let aedesEnqueue: PacketListener | undefined;

/**
 * Inbound topics are mounted into the client's tenant before aedes sees the packet; one
 * function for every connection (`this` is the client's parser, whose `client` aedes sets).
 */
function mountThenEnqueue(this: { client: BrokerClient }, packet: Parameters<typeof mountInbound>[1]): void {
  const client = this.client;
  const session = client.tenantSession;
  if (session !== undefined) {
    const err = mountInbound(session.tenant.mountpoint, packet);
    if (err !== null) {
      client.emit('error', new Error(err));
      return;
    }
  }
  (aedesEnqueue as PacketListener).call(this, packet);
}

export interface ListenerPorts {
  mqtt: number;
  ws: number;
  mqtts: number;
  wss: number;
}

/** Owns the aedes instance and its listeners; the REST layer reaches the data plane through it. */
@Injectable()
export class BrokerService implements OnApplicationShutdown {
  private readonly logger = new Logger('Broker');
  private aedesInstance?: Aedes;
  private tcp?: NetServer;
  private wsHttp?: HttpServer;
  private wss?: WebSocketServer;
  private mqtts?: TlsServer;
  private wssHttps?: HttpsServer;
  private wssSecure?: WebSocketServer;
  readonly events: HookEvents & { listeners: Partial<HookEvents>[] };
  private readonly checks = new Map<string, () => Promise<void>>();
  /** the tenants' limits (limits/broker-limits.ts) */
  readonly limits: BrokerLimits;
  private readonly startHooks: ((aedes: Aedes) => void)[] = [];
  /** memory (aedes' default) unless clustered: src/cluster sets the Redis one before start() */
  private backend?: BrokerBackend;
  /** every MQTT connection, whatever its state, so a shutdown can close each one */
  private readonly connections = new Set<Duplex>();
  /** set at shutdown: readiness fails and new CONNECTs are refused with CONNACK 3 */
  private draining = false;
  ports?: ListenerPorts;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly identity: IdentityService,
    private readonly certificateAuth: ClientCertificateAuth,
    @Inject(SERVER_TLS) private readonly serverTls: ServerTlsProvider,
  ) {
    const listeners: Partial<HookEvents>[] = [];
    this.events = {
      listeners,
      connectRefused: (client, tenant, reason, code) => {
        if (tenant) {
          tenant.counters.connectsRefused++;
          const by = tenant.counters.connectsRefusedBy;
          by[reason] = (by[reason] ?? 0) + 1;
        }
        for (const l of listeners) l.connectRefused?.(client, tenant, reason, code);
      },
      publishDropped: (session, reason) => {
        const counters = session.tenant.counters;
        counters.messagesDropped++;
        counters.messagesDroppedBy[reason] = (counters.messagesDroppedBy[reason] ?? 0) + 1;
        for (const l of listeners) l.publishDropped?.(session, reason);
      },
      sessionClosed: (client, session) => {
        for (const l of listeners) l.sessionClosed?.(client, session);
      },
    };
    this.limits = new BrokerLimits(identity, this.events, config.maxPacketSize);
    identity.kick = (clients, reason) => {
      // one batch on the next tick, after the change that caused it has been applied
      setImmediate(() => {
        for (const client of clients) {
          if (client.tenantSession) client.tenantSession.kickedFor = reason;
          client.close();
        }
      });
    };
  }

  get aedes(): Aedes {
    if (!this.aedesInstance) throw new Error('broker not started');
    return this.aedesInstance;
  }

  useBackend(backend: BrokerBackend): void {
    this.backend = backend;
  }

  async start(): Promise<ListenerPorts> {
    const hooks = new TenantHooks(this.identity, this.config, this.events, this.certificateAuth, this.limits);
    const backend = this.backend;
    const aedes = await Aedes.createBroker({
      id: backend?.brokerId ?? this.config.nodeId,
      ...(backend ? { persistence: backend.persistence as never, mq: backend.mq as never } : {}),
      connectTimeout: this.config.connectTimeoutMs,
      // MQTT 3.1's 23-character limit is lifted as mosquitto does; topic depth is ours to bound
      maxClientsIdLength: 65535,
      maxTopicLevels: MAX_TOPIC_LEVELS + 1,
      preConnect: hooks.preConnect as never,
      authenticate: this.gate(hooks.authenticate) as never,
      authorizePublish: hooks.authorizePublish as never,
      authorizeSubscribe: hooks.authorizeSubscribe as never,
      authorizeForward: hooks.authorizeForward as never,
      published: hooks.published as never,
    });
    this.aedesInstance = aedes;
    // offline queues are bounded per node; with a shared store another node may hold the session
    this.limits.install(aedes, { boundOfflineQueues: backend === undefined });
    for (const fn of this.startHooks) fn(aedes);
    backend?.attach(aedes);
    aedes.on('client', (c) => this.onClientRegistered(c as BrokerClient));

    this.tcp = this.behindBalancer(createNetServer({ noDelay: true }, (socket) => this.handle(socket, undefined)));
    const mqtt = await listen(this.tcp, this.config.mqttPort, this.config.host);

    this.wsHttp = this.behindBalancer(createHttpServer(upgradeRequired));
    this.wss = this.mountWebSocket(this.wsHttp);
    const ws = await listen(this.wsHttp, this.config.wsPort, this.config.host);

    // MQTTS and secure WebSockets: same certificate; a client certificate is checked at CONNECT
    const tlsOptions = serverTlsOptions(this.serverTls.material(), this.config.connectTimeoutMs);
    this.mqtts = this.behindBalancer(createTlsServer(tlsOptions, (socket) => this.handle(socket, undefined)));
    const mqtts = await listen(this.mqtts, this.config.mqttsPort, this.config.host);
    this.wssHttps = this.behindBalancer(createHttpsServer(tlsOptions, upgradeRequired));
    this.wssSecure = this.mountWebSocket(this.wssHttps);
    const wss = await listen(this.wssHttps, this.config.wssPort, this.config.host);
    // a renewed certificate serves the next handshakes; connections already open keep theirs
    this.serverTls.onChange((material) => {
      const renewed = serverTlsOptions(material, this.config.connectTimeoutMs);
      this.mqtts?.setSecureContext(renewed);
      this.wssHttps?.setSecureContext(renewed);
    });

    this.ports = { mqtt, ws, mqtts, wss };
    return this.ports;
  }

  /** With PROXY_PROTOCOL, `server` takes only connections that start with a PROXY header. */
  private behindBalancer<T extends NetServer>(server: T): T {
    if (this.config.proxyProtocol) requireProxyHeader(server, this.config.connectTimeoutMs);
    return server;
  }

  private mountWebSocket(server: HttpServer | HttpsServer): WebSocketServer {
    const wss = new WebSocketServer({
      server,
      path: '/mqtt',
      maxPayload: this.config.maxPacketSize + 16,
      handleProtocols: (protocols) =>
        protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false,
    });
    wss.on('connection', (ws, req) => {
      req.socket.setNoDelay(true);
      const stream = createWebSocketStream(ws);
      stream.on('error', () => ws.terminate());
      this.handle(stream, req);
    });
    return wss;
  }

  /**
   * Fail closed: a CONNECT that cannot be served as it should (shutting down, or the session
   * store unreachable) is refused with CONNACK 3, server unavailable, and the client retries.
   */
  private gate(authenticate: TenantHooks['authenticate']): TenantHooks['authenticate'] {
    return (client, username, password, done) => {
      const reason = this.draining ? 'shutting-down' : (this.backend?.unavailableReason() ?? null);
      if (reason === null) return authenticate(client, username, password, done);
      this.events.connectRefused(client, undefined, reason, 3);
      done(Object.assign(new Error(reason), { returnCode: 3 }), null);
    };
  }

  /** Runs `fn` with the aedes instance as soon as it exists (listeners of its events). */
  whenStarted(fn: (aedes: Aedes) => void): void {
    if (this.aedesInstance) fn(this.aedesInstance);
    else this.startHooks.push(fn);
  }

  isListening(): boolean {
    return (
      !this.draining &&
      this.aedesInstance !== undefined &&
      !!this.tcp?.listening &&
      !!this.wsHttp?.listening &&
      !!this.mqtts?.listening &&
      !!this.wssHttps?.listening
    );
  }

  /** Extra dependencies /health/ready must see answering (Redis when clustered). */
  readinessChecks(): Iterable<[string, () => Promise<void>]> {
    return this.checks.entries();
  }

  addReadinessCheck(name: string, check: () => Promise<void>): void {
    this.checks.set(name, check);
  }

  /** Every connection, whatever the listener, comes through here. */
  handle(stream: Duplex | Socket, req: IncomingMessage | undefined): BrokerClient {
    const client = this.aedes.handle(stream as never, req as never) as unknown as BrokerClient;
    hardenClient(client as never, {
      maxPacketSize: this.config.maxPacketSize,
      maxPacketSizeBeforeConnect: MAX_PACKET_SIZE_BEFORE_CONNECT,
      connectTimeoutMs: this.config.connectTimeoutMs,
      onDrop: this.onDrop,
    });
    this.connections.add(stream);
    // one listener does every per-connection cleanup (each once() costs a wrapper per connection)
    stream.on('close', () => this.connectionClosed(stream, client));
    const parser = client._parser;
    // aedes' module-level `enqueue`, the same function for every client
    aedesEnqueue ??= parser.listeners('packet')[0] as PacketListener;
    parser.removeAllListeners('packet');
    parser.on('packet', mountThenEnqueue);
    return client;
  }

  private readonly onDrop = (client: object, reason: DropReason): void => {
    const session = (client as BrokerClient).tenantSession;
    if (session) this.events.publishDropped(session, reason);
  };

  private connectionClosed(stream: Duplex | Socket, client: BrokerClient): void {
    this.connections.delete(stream);
    const session = client.tenantSession;
    if (session !== undefined) {
      this.limits.detach(session);
      session.tenant.clients.delete(client);
      this.events.sessionClosed(client, session);
    }
  }

  private onClientRegistered(client: BrokerClient): void {
    const session = client.tenantSession;
    if (!session) return;
    session.registered = true;
    const tenant = session.tenant;
    if (tenant.deleted) {
      client.close();
      return;
    }
    // removed by connectionClosed
    tenant.clients.add(client);
  }

  /** Live sessions of a tenant on this node. */
  sessionsOf(tenant: TenantRuntime): TenantSession[] {
    const out: TenantSession[] = [];
    for (const c of tenant.clients) if (c.tenantSession) out.push(c.tenantSession);
    return out;
  }

  clientsOf(tenantId: string): BrokerClient[] {
    const tenant = this.identity.cachedTenant(tenantId);
    return tenant ? [...tenant.clients] : [];
  }

  /**
   * Graceful, and bounded in time: stop accepting, close every client's connection cleanly (so
   * it reconnects to another node), then let the persistence write what it still has in flight.
   */
  async onApplicationShutdown(): Promise<void> {
    this.draining = true;
    const aedes = this.aedesInstance;
    // no new connections from here; each callback fires once the server's connections are gone
    const listenersClosed = Promise.all([close(this.tcp), close(this.wsHttp), close(this.mqtts), close(this.wssHttps)]);
    // MQTT 3.1.1 has no server DISCONNECT: a WebSocket close frame (1001, going away) or a TCP
    // FIN after the pending writes is the clean way to say goodbye
    const open = [...this.connections];
    const gone = Promise.all(open.map((stream) => (stream.destroyed ? undefined : once(stream, 'close'))));
    for (const wss of [this.wss, this.wssSecure]) for (const ws of wss?.clients ?? []) ws.close(1001, 'server shutting down');
    for (const stream of open) if (stream instanceof Socket) stream.end();
    await withTimeout(gone, 3000);
    // aedes closes whatever is left and its emitter; then the persistence is flushed
    if (aedes) await withTimeout(new Promise<void>((resolve) => aedes.close(() => resolve())), 2000);
    this.aedesInstance = undefined;
    for (const stream of this.connections) stream.destroy();
    await this.backend?.close();
    for (const wss of [this.wss, this.wssSecure]) {
      if (!wss) continue;
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
    await withTimeout(listenersClosed, 1000);
  }
}

function once(stream: Duplex, event: string): Promise<void> {
  return new Promise((resolve) => stream.once(event, () => resolve()));
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise((resolve) => (timer = setTimeout(resolve, ms)))]).then(() => clearTimeout(timer));
}

function upgradeRequired(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(426, { 'content-type': 'text/plain' }).end('MQTT over WebSocket: connect to /mqtt\n');
}

function listen(server: NetServer | HttpServer, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function close(server: NetServer | HttpServer | undefined): Promise<void> {
  if (!server || !server.listening) return Promise.resolve();
  return new Promise((resolve) => server.close(() => resolve()));
}
