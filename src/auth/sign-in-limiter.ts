/**
 * Brute-force protection for sign-in, in layers (SPEC section 10): failures
 * are counted per account, per IP and per account+IP. Below the limit each
 * further failure waits a little longer before it is answered; at the limit
 * the next attempt is refused with 429 until the window passes. A success
 * clears only its own account+IP counter, so signing in from one address does
 * not wipe what an attacker built up from another.
 */
import type { CounterStore } from "./counter-store.ts";

export interface SignInLimits {
  /** Failures allowed per account (and per account+IP) in a window. */
  maxFailures: number;
  /** Failures allowed per IP in a window (many users may share one address). */
  maxFailuresPerIp: number;
  windowMs: number;
  /** Delay before answering the second failure; doubles for each further one. */
  baseDelayMs: number;
}

export const defaultSignInLimits: SignInLimits = {
  maxFailures: 5,
  maxFailuresPerIp: 50,
  windowMs: 15 * 60 * 1000,
  baseDelayMs: 250,
};

export type LimitCheck = { blocked: false } | { blocked: true; retryAfterSeconds: number };

export interface SignInLimiter {
  readonly maxFailures: number;
  /** Whether an attempt for `account` (normalised email or user id) from `ip` may proceed. */
  check(account: string, ip: string): Promise<LimitCheck>;
  /** Counts a failure; returns how long to wait before answering it. */
  recordFailure(account: string, ip: string): Promise<{ delayMs: number; failures: number }>;
  recordSuccess(account: string, ip: string): Promise<void>;
}

export function createSignInLimiter(store: CounterStore, limits: SignInLimits = defaultSignInLimits): SignInLimiter {
  const keys = (account: string, ip: string) => ({
    account: `acct:${account}`,
    ip: `ip:${ip}`,
    accountIp: `acctip:${account}|${ip}`,
  });
  return {
    maxFailures: limits.maxFailures,
    async check(account, ip) {
      const k = keys(account, ip);
      const [a, i, ai] = await Promise.all([store.peek(k.account), store.peek(k.ip), store.peek(k.accountIp)]);
      const over = [
        a && a.count >= limits.maxFailures ? a : undefined,
        ai && ai.count >= limits.maxFailures ? ai : undefined,
        i && i.count >= limits.maxFailuresPerIp ? i : undefined,
      ].filter((c) => c !== undefined);
      if (over.length === 0) return { blocked: false };
      const resetAt = Math.max(...over.map((c) => c!.resetAt));
      return { blocked: true, retryAfterSeconds: Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)) };
    },
    async recordFailure(account, ip) {
      const k = keys(account, ip);
      const [a, , ai] = await Promise.all([
        store.increment(k.account, limits.windowMs),
        store.increment(k.ip, limits.windowMs),
        store.increment(k.accountIp, limits.windowMs),
      ]);
      const failures = Math.max(a.count, ai.count);
      const delayMs = failures <= 1 ? 0 : Math.min(limits.baseDelayMs * 2 ** (failures - 2), 5_000);
      return { delayMs, failures };
    },
    async recordSuccess(account, ip) {
      await store.reset(keys(account, ip).accountIp);
    },
  };
}
