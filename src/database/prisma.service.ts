import { Inject, Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { PrismaClient } from '../generated/prisma/client';
import { APP_CONFIG, AppConfig } from '../config/config';
import { applyMigrations } from './migrator';

type Closer = () => Promise<void>;

/**
 * One Prisma client over either PostgreSQL (DATABASE_URL) or embedded PGlite under DATA_DIR.
 * Pending migrations are applied before the client is handed out.
 */
@Injectable()
export class PrismaService implements OnApplicationShutdown {
  private readonly logger = new Logger('Database');
  private client?: PrismaClient;
  private closers: Closer[] = [];
  /**
   * Runs one statement straight on the driver under Prisma (node-postgres' pool or PGlite),
   * returning the affected rows. Prisma's engine costs 4-9 ms of CPU per raw statement on the
   * event loop against 0.3-0.6 ms for the driver alone (a 20-500 row audit batch, PostgreSQL),
   * which in a connect storm took more CPU than the connects. For background bulk writes.
   */
  execute: (sql: string, params: unknown[]) => Promise<number> = async () => {
    throw new Error('database not connected');
  };

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  /** a cheap liveness probe for /health/ready */
  async ping(): Promise<void> {
    await this.execute('SELECT 1', []);
  }

  get db(): PrismaClient {
    if (!this.client) throw new Error('database not connected');
    return this.client;
  }

  get kind(): 'postgresql' | 'pglite' {
    return this.config.databaseUrl ? 'postgresql' : 'pglite';
  }

  async connect(): Promise<void> {
    if (this.client) return;
    if (this.config.databaseUrl) await this.connectPostgres(this.config.databaseUrl);
    else await this.connectPglite(join(this.config.dataDir, 'pglite'));
  }

  private async connectPostgres(url: string): Promise<void> {
    const { Client, Pool } = await import('pg');
    const { PrismaPg } = await import('@prisma/adapter-pg');
    const migrationClient = new Client({ connectionString: url });
    await migrationClient.connect();
    try {
      const applied = await applyMigrations(
        { exec: (sql) => migrationClient.query(sql), query: (sql, params) => migrationClient.query(sql, params) as never },
        { advisoryLock: true },
      );
      if (applied.length) this.logger.log(`applied migrations: ${applied.join(', ')}`);
    } finally {
      await migrationClient.end();
    }
    const pool = new Pool({ connectionString: url, max: 10 });
    // an idle connection dropped by the server: the next query reconnects, nothing to crash for
    pool.on('error', (err) => this.logger.warn(`idle database connection lost: ${err.message}`));
    const client = new PrismaClient({ adapter: new PrismaPg(pool) });
    await client.$connect();
    this.client = client;
    this.execute = async (sql, params) => (await pool.query(sql, params)).rowCount ?? 0;
    this.closers.push(async () => {
      await client.$disconnect();
      await pool.end();
    });
  }

  private async connectPglite(dir: string): Promise<void> {
    mkdirSync(dir, { recursive: true });
    const { PGlite } = await import('@electric-sql/pglite');
    const { PrismaPGlite } = await import('pglite-prisma-adapter');
    const pglite = new PGlite(dir);
    await pglite.waitReady;
    const applied = await applyMigrations(
      { exec: (sql) => pglite.exec(sql), query: (sql, params) => pglite.query(sql, params) as never },
      { advisoryLock: false },
    );
    if (applied.length) this.logger.log(`applied migrations: ${applied.join(', ')}`);
    const client = new PrismaClient({ adapter: new PrismaPGlite(pglite) });
    this.client = client;
    this.execute = async (sql, params) => (await pglite.query(sql, params)).affectedRows ?? 0;
    this.closers.push(async () => {
      await client.$disconnect();
      await pglite.close();
    });
  }

  async onApplicationShutdown(): Promise<void> {
    const closers = this.closers.reverse();
    this.closers = [];
    this.client = undefined;
    for (const close of closers) await close().catch(() => undefined);
  }
}
