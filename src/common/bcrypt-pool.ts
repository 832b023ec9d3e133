import { availableParallelism } from 'node:os';
import * as bcrypt from 'bcrypt';

/**
 * Every bcrypt hash and comparison of the process goes through here, at most one per core at a
 * time (FIFO). bcrypt runs on libuv's thread pool, which has more threads than a small machine
 * has cores (4 on 2; fs, DNS and webcrypto need some free during a storm). With a job on every
 * pool thread, the kernel keeps migrating the surplus bcrypt threads between cores and now and
 * then runs a freshly migrated one instead of the event loop it just woke, for a whole tick
 * (4 ms here), in spite of their nice 19. One bcrypt per core, none left over: connected clients'
 * p99 during a 28/s cold connect storm on 2 cores went from 4.4-7.5 ms to ~1.5-1.9 ms, with the
 * same connects per second (bench/storm-probe.js; `perf sched timehist` shows the waits).
 */
export const BCRYPT_CONCURRENCY = Math.max(1, availableParallelism());

let running = 0;
const waiting: (() => void)[] = [];

function run<T>(job: () => Promise<T>): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const start = (): void => {
      running++;
      // the slot is free before the caller resumes
      job().then(
        (value) => {
          next();
          resolve(value);
        },
        (err: unknown) => {
          next();
          reject(err);
        },
      );
    };
    if (running < BCRYPT_CONCURRENCY) start();
    else waiting.push(start);
  });
}

function next(): void {
  running--;
  const start = waiting.shift();
  if (start !== undefined) start();
}

export function hashPassword(password: string, cost: number): Promise<string> {
  return run(() => bcrypt.hash(password, cost));
}

export function comparePassword(password: string, hash: string): Promise<boolean> {
  return run(() => bcrypt.compare(password, hash));
}

/** jobs started and not finished, and jobs waiting for a turn (tests, metrics) */
export function bcryptLoad(): { running: number; waiting: number } {
  return { running, waiting: waiting.length };
}
