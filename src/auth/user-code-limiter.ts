/**
 * Wrong user codes at the device verification page, counted per client
 * address (RFC 8628 section 5.1: "the authorization server MUST rate-limit
 * the user code entry"). Reserve, then release: every attempt is counted
 * before oidc-provider looks the code up, so parallel guesses cannot all pass
 * a check made before any was counted; an attempt whose code named a live
 * device code gives its unit back. A right code does not clear the count:
 * anyone can start a device flow of their own and would otherwise reset it
 * with their own code between guesses. Counters live in the app's counter
 * store (auth/counter-store.ts), so they are shared through Redis when
 * REDIS_URL is set.
 */
import type { CounterStore } from "./counter-store.ts";

export interface UserCodeLimits {
  /** Wrong codes allowed per address in a window; the next attempt is refused. */
  maxFailures: number;
  windowMs: number;
}

export const defaultUserCodeLimits: UserCodeLimits = { maxFailures: 10, windowMs: 15 * 60 * 1000 };

export type UserCodeAttempt = { blocked: true; retryAfterSeconds: number } | { blocked: false; release(): Promise<void> };

export interface UserCodeLimiter {
  /** Counts an attempt from `address` (a rate-limit key: an IPv6 address as its /64) before it is checked. */
  reserve(address: string): Promise<UserCodeAttempt>;
}

export function createUserCodeLimiter(store: CounterStore, limits: UserCodeLimits = defaultUserCodeLimits): UserCodeLimiter {
  return {
    async reserve(address) {
      const key = `usercode:${address}`;
      const counted = await store.increment(key, limits.windowMs);
      if (counted.count > limits.maxFailures) {
        await store.decrement(key);
        return { blocked: true, retryAfterSeconds: Math.max(1, Math.ceil((counted.resetAt - Date.now()) / 1000)) };
      }
      let settled = false;
      return {
        blocked: false,
        async release() {
          if (settled) return;
          settled = true;
          await store.decrement(key);
        },
      };
    },
  };
}
