import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { BrokerService } from '../broker/broker.service';
import { IdentityService } from '../broker/identity/identity.service';
import type { TenantRuntime } from '../broker/identity/tenant-runtime';
import { proxyHeaderRefusals } from '../broker/proxy-protocol';
import { AuditService } from '../audit/audit.service';
import { bcryptLoad } from '../common/bcrypt-pool';
import { APP_CONFIG, AppConfig } from '../config/config';
import { LIMIT_NAMES } from '../tenants/limits';

/** Figures of one tenant, or of the node, read once per scrape. */
interface Figures {
  connections: number;
  subscriptions: number;
  retained: number;
  connectsAccepted: number;
  connectsRefusedBy: Record<string, number>;
  messagesIn: number;
  messagesOut: number;
  bytesIn: number;
  bytesOut: number;
  messagesDroppedBy: Record<string, number>;
  limitHits: Record<string, number>;
}

interface Snapshot {
  tenants: { slug: string; figures: Figures }[];
  node: Figures;
}

const emptyFigures = (): Figures => ({
  connections: 0,
  subscriptions: 0,
  retained: 0,
  connectsAccepted: 0,
  connectsRefusedBy: {},
  messagesIn: 0,
  messagesOut: 0,
  bytesIn: 0,
  bytesOut: 0,
  messagesDroppedBy: {},
  limitHits: {},
});

/**
 * Prometheus metrics, one Registry per app instance (TOOLCHAIN.md §6). The MQTT figures are
 * not pushed to prom-client per message: the data plane bumps plain integers on each tenant's
 * TenantCounters, and each scrape reads them (collect callbacks over one snapshot).
 *
 * `mqtt_*` families carry a `tenant` label (slug) for the tenants this node holds; `mqtt_node_*`
 * are this process's totals, including tenants deleted since and refusals that named no tenant.
 */
@Injectable()
export class MetricsService implements OnModuleInit {
  readonly registry = new Registry();
  private current?: Snapshot;
  /** tenants seen at the previous scrape: those gone since are folded into `retired` */
  private seen = new Map<string, TenantRuntime>();
  private readonly retired = emptyFigures();
  /** refused connects that could not be tied to a tenant (unknown tenant, check failed) */
  private readonly unattributedRefusals: Record<string, number> = {};

  constructor(
    private readonly identity: IdentityService,
    private readonly broker: BrokerService,
    private readonly adapterHost: HttpAdapterHost,
    private readonly audit: AuditService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.registry.setDefaultLabels({ node: config.nodeId });
    collectDefaultMetrics({ register: this.registry });
    broker.events.listeners.push({
      connectRefused: (_client, tenant, reason) => {
        if (tenant === undefined) this.unattributedRefusals[reason] = (this.unattributedRefusals[reason] ?? 0) + 1;
      },
    });
    this.defineMqttMetrics();
    this.defineAuthMetrics();
  }

  onModuleInit(): void {
    this.instrumentHttp();
  }

  /** The exposition text; the MQTT figures are read once for the whole scrape. */
  async render(): Promise<string> {
    this.current = this.snapshot();
    try {
      return await this.registry.metrics();
    } finally {
      this.current = undefined;
    }
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private figures(): Snapshot {
    return this.current ?? this.snapshot();
  }

  private snapshot(): Snapshot {
    const tenants: Snapshot['tenants'] = [];
    const node = emptyFigures();
    const now = new Map<string, TenantRuntime>();
    for (const tenant of this.identity.cachedTenants()) {
      now.set(tenant.id, tenant);
      const figures = tenantFigures(tenant);
      tenants.push({ slug: tenant.slug, figures });
      addFigures(node, figures);
    }
    for (const [id, tenant] of this.seen) {
      if (!now.has(id)) addFigures(this.retired, { ...tenantFigures(tenant), connections: 0, subscriptions: 0, retained: 0 });
    }
    this.seen = now;
    addFigures(node, this.retired);
    addCounts(node.connectsRefusedBy, this.unattributedRefusals);
    return { tenants, node };
  }

  private defineMqttMetrics(): void {
    const registers = [this.registry];
    const snap = () => this.figures();
    type Sample = readonly [Record<string, string>, number];

    /**
     * Two families from one reading of the figures: `mqtt_<name>` per tenant and `mqtt_node_<name>`
     * for the node; `values` gives a number per value of `label` (or under '' when there is none).
     */
    const define = (
      kind: 'gauge' | 'counter',
      name: string,
      help: string,
      label: string | null,
      values: (f: Figures) => Record<string, number>,
    ): void => {
      const samples = (f: Figures, base: Record<string, string>): Sample[] =>
        Object.entries(values(f)).map(([key, v]) => [label === null ? base : { ...base, [label]: key }, v] as const);
      const families = [
        {
          name: `mqtt_${name}`,
          help,
          labelNames: label === null ? ['tenant'] : ['tenant', label],
          read: () => snap().tenants.flatMap((t) => samples(t.figures, { tenant: t.slug })),
        },
        {
          name: `mqtt_node_${name}`,
          help: `${help} (this node, all tenants)`,
          labelNames: label === null ? [] : [label],
          read: () => samples(snap().node, {}),
        },
      ];
      for (const { read, ...config } of families) {
        if (kind === 'gauge') {
          new Gauge({
            ...config,
            registers,
            collect() {
              this.reset();
              for (const [labels, v] of read()) this.set(labels, v);
            },
          });
        } else {
          new Counter({
            ...config,
            registers,
            collect() {
              this.reset();
              for (const [labels, v] of read()) this.inc(labels, v);
            },
          });
        }
      }
    };
    const one = (pick: (f: Figures) => number) => (f: Figures) => ({ '': pick(f) });

    define('gauge', 'connections', 'MQTT connections open', null, one((f) => f.connections));
    define('counter', 'connects_total', 'MQTT connects by result: accepted, or the reason of the refusal', 'result', (f) => ({
      accepted: f.connectsAccepted,
      ...f.connectsRefusedBy,
    }));
    define('counter', 'messages_received_total', 'PUBLISH packets received and routed', null, one((f) => f.messagesIn));
    define('counter', 'messages_sent_total', 'PUBLISH packets sent to subscribers', null, one((f) => f.messagesOut));
    define('counter', 'bytes_received_total', 'payload bytes received', null, one((f) => f.bytesIn));
    define('counter', 'bytes_sent_total', 'payload bytes sent', null, one((f) => f.bytesOut));
    define('counter', 'messages_dropped_total', 'messages dropped, by reason', 'reason', (f) => f.messagesDroppedBy);
    define('gauge', 'subscriptions', 'subscriptions of the open connections', null, one((f) => f.subscriptions));
    define('gauge', 'retained_messages', 'retained messages stored by this node', null, one((f) => f.retained));
    define('counter', 'limit_hits_total', 'times a tenant limit refused, held back or cut something, by limit', 'limit', (f) => f.limitHits);
  }

  private defineAuthMetrics(): void {
    const identity = this.identity;
    new Counter({
      name: 'mqtt_auth_bcrypt_comparisons_total',
      help: 'bcrypt comparisons run for MQTT password logins (verified passwords are cached)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(identity.bcryptComparisons);
      },
    });
    new Gauge({
      name: 'mqtt_auth_bcrypt_queued',
      help: 'password hashes and checks waiting for a core (bcrypt runs one per core): a cold connect storm in progress',
      registers: [this.registry],
      collect() {
        this.set(bcryptLoad().waiting);
      },
    });
    const audit = this.audit;
    new Counter({
      name: 'audit_events_dropped_total',
      help: 'audit events lost because the database did not keep up (bounded buffer full)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(audit.droppedEvents);
      },
    });
    new Counter({
      name: 'mqtt_proxy_header_refused_total',
      help: 'connections closed without a valid PROXY protocol header in time (PROXY_PROTOCOL=true): a balancer not sending it, or a client going around it',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(proxyHeaderRefusals());
      },
    });
    new Counter({
      name: 'mqtt_auth_lockouts_total',
      help: 'addresses or address/device pairs locked out after repeated failed logins',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(identity.loginGuard.lockouts);
      },
    });
  }

  /** http_requests_total and http_request_duration_seconds, by method, route template and status. */
  private instrumentHttp(): void {
    const labelNames = ['method', 'route', 'status'];
    const requests = new Counter({ name: 'http_requests_total', help: 'HTTP requests answered', labelNames, registers: [this.registry] });
    const duration = new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency',
      labelNames,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [this.registry],
    });
    const fastify = this.adapterHost.httpAdapter.getInstance<FastifyInstance>();
    fastify.addHook('onResponse', (request, reply, done) => {
      // the route template, never the raw URL: label values must stay few
      const labels = { method: request.method, route: request.routeOptions.url ?? 'unmatched', status: String(reply.statusCode) };
      requests.inc(labels);
      duration.observe(labels, reply.elapsedTime / 1000);
      done();
    });
  }
}

function tenantFigures(tenant: TenantRuntime): Figures {
  const c = tenant.counters;
  let subscriptions = 0;
  for (const client of tenant.clients) {
    for (const _ in client.subscriptions) subscriptions++;
  }
  const limitHits: Record<string, number> = {};
  for (const name of LIMIT_NAMES) if (c.limitHits[name] > 0) limitHits[name] = c.limitHits[name];
  return {
    connections: tenant.clients.size,
    subscriptions,
    retained: tenant.limitState.retained.size,
    connectsAccepted: c.connectsAccepted,
    connectsRefusedBy: { ...c.connectsRefusedBy },
    messagesIn: c.messagesIn,
    messagesOut: c.messagesOut,
    bytesIn: c.bytesIn,
    bytesOut: c.bytesOut,
    messagesDroppedBy: { ...c.messagesDroppedBy },
    limitHits,
  };
}

function addFigures(into: Figures, f: Figures): void {
  into.connections += f.connections;
  into.subscriptions += f.subscriptions;
  into.retained += f.retained;
  into.connectsAccepted += f.connectsAccepted;
  into.messagesIn += f.messagesIn;
  into.messagesOut += f.messagesOut;
  into.bytesIn += f.bytesIn;
  into.bytesOut += f.bytesOut;
  addCounts(into.connectsRefusedBy, f.connectsRefusedBy);
  addCounts(into.messagesDroppedBy, f.messagesDroppedBy);
  addCounts(into.limitHits, f.limitHits);
}

function addCounts(into: Record<string, number>, from: Record<string, number>): void {
  for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
}
