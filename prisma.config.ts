import { defineConfig } from 'prisma/config';

// The Prisma CLI needs a postgres:// URL in the schema even when a driver adapter does the work;
// without one it tries to download a query engine, which these machines cannot do.
const usePglite = !process.env.DATABASE_URL;
process.env.DATABASE_URL ??= 'postgresql://pglite@localhost/pglite';

export default defineConfig({
  experimental: { adapter: true },
  engine: 'js',
  schema: 'prisma/schema.prisma',
  async adapter() {
    if (!usePglite) {
      const { PrismaPg } = await import('@prisma/adapter-pg');
      return new PrismaPg({ connectionString: process.env.DATABASE_URL });
    }
    const { PGlite } = await import('@electric-sql/pglite');
    const { PrismaPGlite } = await import('pglite-prisma-adapter');
    return new PrismaPGlite(new PGlite(process.env.PGLITE_DIR) /* in memory unless set: the CLI only needs it for diffs */);
  },
});
