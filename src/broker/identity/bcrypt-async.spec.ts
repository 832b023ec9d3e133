import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** bcrypt must run on libuv's pool: a synchronous call would stall every connection of every tenant. */
describe('bcrypt usage', () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return name === 'generated' ? [] : files(path);
      return path.endsWith('.ts') && !path.endsWith('.spec.ts') ? [path] : [];
    });

  it('never calls the synchronous bcrypt functions', () => {
    const offenders = files(join(__dirname, '..', '..')).filter((f) => /\b(compareSync|hashSync|genSaltSync)\s*\(/.test(readFileSync(f, 'utf8')));
    expect(offenders).toEqual([]);
  });

  it('reaches bcrypt only through common/bcrypt-pool (one job per core)', () => {
    const importers = files(join(__dirname, '..', '..')).filter((f) => /from 'bcrypt'|require\('bcrypt'\)/.test(readFileSync(f, 'utf8')));
    expect(importers.map((f) => f.split(/[\\/]src[\\/]/).pop())).toEqual(['common/bcrypt-pool.ts']);
  });
});
