/**
 * Fixed-window counters for brute-force limits: in memory by default, in
 * Redis when REDIS_URL is set so that every instance sees the same counts
 * (SPEC section 10).
 */
import { Redis } from "ioredis";

export interface Counter {
  count: number;
  /** Epoch milliseconds when the window ends. */
  resetAt: number;
}

export interface CounterStore {
  /** Adds one to `key`, starting a window of `windowMs` if none is open. */
  increment(key: string, windowMs: number): Promise<Counter>;
  /** The open window of `key`, if any. */
  peek(key: string): Promise<Counter | undefined>;
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

/** In-process counters; expired windows are dropped as they are met and on a timer. */
export function createMemoryCounterStore(now: () => number = Date.now): CounterStore {
  const counters = new Map<string, Counter>();
  const live = (key: string) => {
    const counter = counters.get(key);
    if (counter && counter.resetAt <= now()) {
      counters.delete(key);
      return undefined;
    }
    return counter;
  };
  const timer = setInterval(() => {
    for (const key of counters.keys()) live(key);
  }, 60_000);
  timer.unref();
  return {
    async increment(key, windowMs) {
      const counter = live(key) ?? { count: 0, resetAt: now() + windowMs };
      counter.count += 1;
      counters.set(key, counter);
      return { ...counter };
    },
    async peek(key) {
      const counter = live(key);
      return counter && { ...counter };
    },
    async reset(key) {
      counters.delete(key);
    },
    async close() {
      clearInterval(timer);
    },
  };
}

// INCR, and start the window's expiry on the first hit; returns [count, ttl ms].
const incrementScript = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {count, ttl}`;

/** A Redis connection for shared counters (REDIS_URL). */
export function connectRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 2 });
}

/** Counters shared through Redis (INCR + PEXPIRE in one script, so atomic). */
export function createRedisCounterStore(redis: Redis, prefix = "gatehouse:rl:"): CounterStore {
  return {
    async increment(key, windowMs) {
      const [count, ttl] = (await redis.eval(incrementScript, 1, prefix + key, String(windowMs))) as [number, number];
      return { count, resetAt: Date.now() + ttl };
    },
    async peek(key) {
      const [value, ttl] = await redis.multi().get(prefix + key).pttl(prefix + key).exec().then((r) => r!.map(([, v]) => v) as [string | null, number]);
      if (value === null || ttl < 0) return undefined;
      return { count: Number(value), resetAt: Date.now() + ttl };
    },
    async reset(key) {
      await redis.del(prefix + key);
    },
    async close() {
      // The connection is owned by whoever opened it.
    },
  };
}
