import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** The SQL surface the runner needs: PGlite and node-postgres both provide it. */
export interface SqlExecutor {
  exec(sql: string): Promise<unknown>;
  query<T>(sql: string, params?: unknown[]): Promise<{ rows: T[] }>;
}

// The schema engine's own advisory-lock key, so the CLI and this runner exclude each other.
const MIGRATION_LOCK_KEY = 72707369;

export function migrationsDir(): string {
  const fromEnv = process.env.MIGRATIONS_DIR;
  if (fromEnv) return resolve(fromEnv);
  // __dirname differs between src/ (jest) and dist/src/ (node): search upwards for prisma/
  for (let dir = __dirname, i = 0; i < 6; i++, dir = resolve(dir, '..')) {
    const candidate = join(dir, 'prisma', 'migrations');
    if (existsSync(candidate)) return candidate;
  }
  return resolve('prisma', 'migrations');
}

/**
 * Applies pending Prisma migrations and records them exactly as `prisma migrate deploy` does,
 * so the CLI agrees afterwards ("No pending migrations"). Prisma has no programmatic API and
 * its CLI cannot download engines here.
 */
export async function applyMigrations(db: SqlExecutor, opts: { advisoryLock: boolean }): Promise<string[]> {
  const dir = migrationsDir();
  const folders = readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort();
  if (opts.advisoryLock) await db.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
  const applied: string[] = [];
  try {
    await db.exec(`CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
      "id" VARCHAR(36) PRIMARY KEY NOT NULL, "checksum" VARCHAR(64) NOT NULL,
      "finished_at" TIMESTAMPTZ, "migration_name" VARCHAR(255) NOT NULL, "logs" TEXT,
      "rolled_back_at" TIMESTAMPTZ, "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
      "applied_steps_count" INTEGER NOT NULL DEFAULT 0)`);
    const { rows } = await db.query<{ migration_name: string; checksum: string }>(
      `SELECT migration_name, checksum FROM "_prisma_migrations" WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL`,
    );
    const done = new Map(rows.map((r) => [r.migration_name, r.checksum]));
    for (const name of folders) {
      const sql = readFileSync(join(dir, name, 'migration.sql'));
      const checksum = createHash('sha256').update(sql).digest('hex');
      const previous = done.get(name);
      if (previous !== undefined) {
        if (previous !== checksum) throw new Error(`migration ${name} was modified after it was applied`);
        continue;
      }
      await db.exec('BEGIN');
      try {
        await db.exec(sql.toString('utf8'));
        await db.query(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, now(), 1)`,
          [randomUUID(), checksum, name],
        );
        await db.exec('COMMIT');
      } catch (err) {
        await db.exec('ROLLBACK');
        throw err;
      }
      applied.push(name);
    }
  } finally {
    if (opts.advisoryLock) await db.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]);
  }
  return applied;
}
