/**
 * A counting semaphore with a bounded queue, for expensive work (argon2)
 * that one client must not be able to pile up: at most `maxConcurrent` tasks
 * run, at most `maxQueue` wait, and a task beyond that is refused at once so
 * the caller can answer 503 with Retry-After instead of queueing without
 * bound (OWASP Denial of Service Cheat Sheet, "limit the resources a single
 * request can consume").
 */

/** Thrown by Semaphore.run when the queue is full; nothing was run. */
export class SemaphoreFullError extends Error {
  readonly code = "semaphore_full";
  override readonly name = "SemaphoreFullError";
  /** A hint for Retry-After: the queue drains within about a second. */
  readonly retryAfterSeconds = 1;
}

export interface SemaphoreLimits {
  maxConcurrent: number;
  maxQueue: number;
}

export interface Semaphore {
  readonly limits: Readonly<SemaphoreLimits>;
  /** Tasks running now. */
  readonly active: number;
  /** Tasks waiting for a slot. */
  readonly queued: number;
  /** Runs `task` when a slot is free; rejects with SemaphoreFullError at once when the queue is full. */
  run<T>(task: () => Promise<T>): Promise<T>;
}

export function createSemaphore(limits: SemaphoreLimits): Semaphore {
  if (!(limits.maxConcurrent >= 1) || !(limits.maxQueue >= 0)) throw new RangeError("a semaphore needs maxConcurrent >= 1 and maxQueue >= 0");
  let active = 0;
  const waiting: (() => void)[] = [];
  const next = () => {
    active -= 1;
    const wake = waiting.shift();
    if (wake) {
      active += 1;
      wake();
    }
  };
  return {
    limits: Object.freeze({ ...limits }),
    get active() {
      return active;
    },
    get queued() {
      return waiting.length;
    },
    async run(task) {
      if (active < limits.maxConcurrent) {
        active += 1;
      } else if (waiting.length < limits.maxQueue) {
        // The slot is handed over by next(): `active` already counts this task.
        await new Promise<void>((resolve) => waiting.push(resolve));
      } else {
        throw new SemaphoreFullError("too much work is queued: try again shortly");
      }
      try {
        return await task();
      } finally {
        next();
      }
    },
  };
}
