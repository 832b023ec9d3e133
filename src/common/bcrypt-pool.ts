import { availableParallelism } from 'node:os';
import * as bcrypt from 'bcrypt';

/**
 * Every bcrypt hash and comparison of the process goes through here, at most one per core at a
 * time (FIFO). With more bcrypt jobs than cores on libuv's pool, the kernel keeps migrating the
 * surplus threads between cores and now and then runs a freshly migrated one instead of the event
 * loop it just woke, for a whole tick (4 ms here), in spite of their nice 19: connected clients'
 * p99 during a 28/s cold connect storm on 2 cores read 4.4-7.5 ms with 4 jobs, 1.7-2.2 ms with one
 * per core, at the same connects per second (bench/storm-probe.js; `perf sched timehist` shows
 * the waits). main.ts sizes the pool to the cores as well; this limit holds where the pool is
 * larger (UV_THREADPOOL_SIZE set by hand), and keeps a storm's backlog in this queue rather than
 * libuv's, so a file, DNS or webcrypto job waits for one bcrypt at most, not for all of them.
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
