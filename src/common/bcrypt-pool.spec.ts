import { BCRYPT_CONCURRENCY, bcryptLoad, comparePassword, hashPassword } from './bcrypt-pool';

describe('bcrypt pool', () => {
  afterEach(() => expect(bcryptLoad()).toEqual({ running: 0, waiting: 0 }));

  it('hashes and compares', async () => {
    const hash = await hashPassword('correct horse', 4);
    expect(hash).toMatch(/^\$2b\$04\$/);
    await expect(comparePassword('correct horse', hash)).resolves.toBe(true);
    await expect(comparePassword('wrong horse', hash)).resolves.toBe(false);
  });

  it('runs one job per core and queues the rest', async () => {
    const hash = await hashPassword('p', 4);
    let mostRunning = 0;
    const jobs = Array.from({ length: 3 * BCRYPT_CONCURRENCY }, (_, i) =>
      comparePassword(i % 2 === 0 ? 'p' : 'q', hash).then((ok) => {
        mostRunning = Math.max(mostRunning, bcryptLoad().running);
        return ok;
      }),
    );
    expect(bcryptLoad()).toEqual({ running: BCRYPT_CONCURRENCY, waiting: 2 * BCRYPT_CONCURRENCY });
    await expect(Promise.all(jobs)).resolves.toEqual(jobs.map((_, i) => i % 2 === 0));
    expect(mostRunning).toBeLessThanOrEqual(BCRYPT_CONCURRENCY);
  });

  it('frees the slot of a job that fails', async () => {
    const failing = Array.from({ length: BCRYPT_CONCURRENCY + 1 }, () => hashPassword('p', 'not-a-salt' as unknown as number));
    for (const f of failing) await expect(f).rejects.toThrow(/salt/i);
    await expect(hashPassword('p', 4)).resolves.toMatch(/^\$2b\$04\$/);
  });
});
