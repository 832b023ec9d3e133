import { ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createPgDatabase as createFreshDatabase } from './pg';

/** The built service (test/run.sh builds before jest runs). */
export const MAIN_JS = resolve(__dirname, '../../dist/src/main.js');

export interface NodePorts {
  http: number;
  mqtt: number;
  ws: number;
  mqtts: number;
  wss: number;
}

export interface LogLine {
  msg?: string;
  level?: number;
  [key: string]: unknown;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** from the signal to the exit */
  ms: number;
}

/**
 * One node of the service as a separate process (`node dist/src/main.js`), on ephemeral ports,
 * read through its JSON log lines: the `listening` line gives its ports.
 */
export class AppProcess {
  readonly lines: LogLine[] = [];
  /** raw output, for a failing test's message */
  output = '';
  private waiters: { match: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  ports!: NodePorts;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
  ) {
    this.exited = new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
    let pending = '';
    const onData = (d: Buffer) => {
      const text = d.toString();
      this.output += text;
      pending += text;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        const raw = pending.slice(0, nl);
        pending = pending.slice(nl + 1);
        let line: LogLine;
        try {
          line = JSON.parse(raw) as LogLine;
        } catch {
          continue;
        }
        this.lines.push(line);
        this.waiters = this.waiters.filter((w) => {
          if (!w.match(line)) return true;
          w.resolve(line);
          return false;
        });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
  }

  get pid(): number {
    return this.child.pid as number;
  }

  get http(): string {
    return `http://127.0.0.1:${this.ports.http}`;
  }

  static async start(name: string, env: Record<string, string>): Promise<AppProcess> {
    if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run "npm run build" first (test/run.sh does)`);
    const child = spawn(process.execPath, [MAIN_JS], {
      env: {
        PATH: process.env.PATH ?? '',
        HOST: '127.0.0.1',
        HTTP_PORT: '0',
        MQTT_PORT: '0',
        MQTTS_PORT: '0',
        WS_PORT: '0',
        WSS_PORT: '0',
        LOG_LEVEL: 'warn',
        BCRYPT_COST: '4',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const node = new AppProcess(name, child);
    const listening = await Promise.race([
      node.waitFor((l) => l.msg === 'listening', 30_000),
      node.exited.then(({ code }) => {
        throw new Error(`${name} exited (${code}) before listening:\n${node.output}`);
      }),
    ]);
    const port = (name: keyof NodePorts) => Number(listening[name]);
    node.ports = { http: port('http'), mqtt: port('mqtt'), ws: port('ws'), mqtts: port('mqtts'), wss: port('wss') };
    return node;
  }

  /** Resolves with the first log line (already printed or next) that matches. */
  waitFor(match: (l: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const seen = this.lines.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`${this.name}: no matching log line within ${timeoutMs} ms:\n${this.output}`)), timeoutMs);
      this.waiters.push({
        match,
        resolve: (l) => {
          clearTimeout(timer);
          res(l);
        },
      });
    });
  }

  /** Sends `signal` and resolves once the process has exited. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<Exit> {
    const t0 = Date.now();
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const { code, signal: sig } = await this.exited;
    return { code, signal: sig, ms: Date.now() - t0 };
  }

  /** Sends `signal` and goes on: for the signals the service handles without exiting (SIGHUP). */
  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }

  /** A tenant (with `tenant` fields such as limits), its device `dev` and a rule allowing everything. */
  async createTenantWithDevice(token: string, slug: string, password: string, tenant: Record<string, unknown> = {}): Promise<void> {
    const steps: [string, unknown][] = [
      ['/api/v1/tenants', { slug, ...tenant }],
      [`/api/v1/tenants/${slug}/devices`, { name: 'dev', password }],
      [`/api/v1/tenants/${slug}/acls`, { device: null, action: 'all', topic: '#', permission: 'allow' }],
    ];
    for (const [path, body] of steps) {
      const res = await this.api('POST', path, token, body);
      if (res.status !== 201) throw new Error(`POST ${path}: expected 201, got ${res.status} ${JSON.stringify(res.body)}`);
    }
  }

  async api<T = any>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.http + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, body: (text && /json/.test(res.headers.get('content-type') ?? '') ? JSON.parse(text) : text) as T };
  }
}

/** A fresh database for the cluster's nodes to share. */
export const createPgDatabase = (adminUrl: string) => createFreshDatabase(adminUrl, 'cluster');

export const dataDirFor = (root: string, name: string): string => join(root, name);
