/**
 * Fixed-window counters for brute-force limits: in memory by default, in
 * Redis when REDIS_URL is set so that every instance sees the same counts
 * (docs: OWASP Authentication Cheat Sheet, "Protect against automated
 * attacks"). `increment` is the reservation primitive and `decrement` its
 * refund: both are atomic (a synchronous Map update in memory, one Lua script
 * in Redis), so a caller that counts an attempt before doing its work can
 * never let more attempts through than the limit, however many run at once.
 */
import { createRequire } from "node:module";
import type { Redis } from "ioredis";

export interface Counter {
  count: number;
  /** Epoch milliseconds when the window ends. */
  resetAt: number;
}

export interface CounterStore {
  /** Adds one to `key`, starting a window of `windowMs` if none is open; returns the new count. */
  increment(key: string, windowMs: number): Promise<Counter>;
  /** Takes one back from `key` (a refunded reservation); no-op when its window has ended. */
  decrement(key: string): Promise<void>;
  /** The open window of `key`, if any. */
  peek(key: string): Promise<Counter | undefined>;
  reset(key: string): Promise<void>;
  close(): Promise<void>;
}

export interface MemoryCounterOptions {
  now?: () => number;
  /**
   * The most keys held at once. Beyond it the least recently counted key is
   * forgotten, so a flood of distinct keys (emails, addresses) costs bounded
   * memory; deployments that must never forget a counter use Redis.
   */
  maxKeys?: number;
}

export const defaultMaxCounterKeys = 100_000;

/** In-process counters, bounded to `maxKeys`; expired windows are dropped as they are met and on a timer. */
export function createMemoryCounterStore({ now = Date.now, maxKeys = defaultMaxCounterKeys }: MemoryCounterOptions = {}): CounterStore & { readonly size: number } {
  // A Map iterates in insertion order: re-inserting a key on each count keeps
  // the least recently counted key first, which is the one evicted (LRU).
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
    get size() {
      return counters.size;
    },
    async increment(key, windowMs) {
      const counter = live(key) ?? { count: 0, resetAt: now() + windowMs };
      counter.count += 1;
      counters.delete(key);
      counters.set(key, counter);
      while (counters.size > maxKeys) counters.delete(counters.keys().next().value!);
      return { ...counter };
    },
    async decrement(key) {
      const counter = live(key);
      if (!counter) return;
      counter.count -= 1;
      if (counter.count <= 0) counters.delete(key);
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

// DECR only an open window (never create one), and drop it at zero. DECR keeps the TTL.
const decrementScript = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = redis.call('DECR', KEYS[1])
if count <= 0 then redis.call('DEL', KEYS[1]) end
return count`;

/** A Redis connection for shared counters (REDIS_URL). */
export function connectRedis(url: string): Redis {
  // Loaded here, not at the top: only deployments with REDIS_URL pay for the
  // client (about 80 ms of start-up and 25 MB resident, docs/PERFORMANCE.md).
  const { Redis: RedisClient } = createRequire(import.meta.url)("ioredis") as typeof import("ioredis");
  return new RedisClient(url, { maxRetriesPerRequest: 2 });
}

/** Counters shared through Redis (each change one Lua script, so atomic). */
export function createRedisCounterStore(redis: Redis, prefix = "gatehouse:rl:"): CounterStore {
  return {
    async increment(key, windowMs) {
      const [count, ttl] = (await redis.eval(incrementScript, 1, prefix + key, String(windowMs))) as [number, number];
      return { count, resetAt: Date.now() + ttl };
    },
    async decrement(key) {
      await redis.eval(decrementScript, 1, prefix + key);
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
