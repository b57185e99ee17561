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
  /**
   * Whether an attempt for `account` (a normalised email) from `ip` may
   * proceed; with no account (a passkey not yet identified) only the IP counts.
   */
  check(account: string | undefined, ip: string): Promise<LimitCheck>;
  /** Counts a failure; returns how long to wait before answering it. */
  recordFailure(account: string | undefined, ip: string): Promise<{ delayMs: number; failures: number }>;
  recordSuccess(account: string, ip: string): Promise<void>;
}

export function createSignInLimiter(store: CounterStore, limits: SignInLimits = defaultSignInLimits): SignInLimiter {
  const keys = (account: string | undefined, ip: string) => ({
    account: account === undefined ? undefined : `acct:${account}`,
    ip: `ip:${ip}`,
    accountIp: account === undefined ? undefined : `acctip:${account}|${ip}`,
  });
  const peek = (key: string | undefined) => (key === undefined ? undefined : store.peek(key));
  const increment = (key: string | undefined) => (key === undefined ? undefined : store.increment(key, limits.windowMs));
  return {
    maxFailures: limits.maxFailures,
    async check(account, ip) {
      const k = keys(account, ip);
      const [a, i, ai] = await Promise.all([peek(k.account), store.peek(k.ip), peek(k.accountIp)]);
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
      const [a, i, ai] = await Promise.all([increment(k.account), store.increment(k.ip, limits.windowMs), increment(k.accountIp)]);
      // Delays follow the account's failures; without an account, the address's
      // failures scaled to the account limit.
      const failures = a && ai ? Math.max(a.count, ai.count) : Math.ceil((i.count * limits.maxFailures) / limits.maxFailuresPerIp);
      const delayMs = failures <= 1 ? 0 : Math.min(limits.baseDelayMs * 2 ** (failures - 2), 5_000);
      return { delayMs, failures };
    },
    async recordSuccess(account, ip) {
      await store.reset(keys(account, ip).accountIp!);
    },
  };
}
