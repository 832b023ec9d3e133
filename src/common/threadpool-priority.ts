import { access, readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/**
 * Lowers the scheduling priority of libuv's thread pool, where bcrypt runs. During a storm of
 * cold connects bcrypt keeps every core busy; at equal priority the event loop then waits for
 * a core behind it, and every connected client's messages wait too. At a lower priority (nice)
 * the pool still takes all the CPU the event loop leaves, and the event loop comes first.
 *
 * The pool's threads start on its first job (libuv starts them all at once), so they are the
 * threads that appear across that first job. Must run before anything else uses the pool.
 * Linux only (elsewhere, and when the threads cannot be told apart, it does nothing).
 * Returns how many threads were lowered.
 */
export async function lowerThreadPoolPriority(niceness: number): Promise<number> {
  if (process.platform !== 'linux') return 0;
  const threads = (): string[] => readdirSync('/proc/self/task');
  const before = new Set(threads());
  // a trivial job, run on the pool
  await new Promise<void>((resolve) => access('/', () => resolve()));
  const pool = threads().filter((tid) => !before.has(tid));
  let lowered = 0;
  for (const tid of pool) {
    try {
      setPriority(Number(tid), niceness);
      lowered++;
    } catch {
      // not allowed here (a container without the capability): leave it as it was
    }
  }
  return lowered;
}
