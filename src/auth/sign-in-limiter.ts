/**
 * Brute-force protection for sign-in and every other check of a secret, in
 * layers (OWASP Authentication Cheat Sheet, "Account lockout"): failures are
 * counted per account, per IP and per account+IP. Below the limit each
 * further failure waits a little longer before it is answered; at the limit
 * the next attempt is refused with 429 until the window passes.
 *
 * Reserve, verify, release: an attempt is counted before the secret is
 * verified (`reserve`), so parallel attempts cannot all pass a check made
 * before any of them was counted; a success gives its unit back (`release`),
 * and clears its own account+IP counter only, so signing in from one address
 * does not wipe what an attacker built up from another.
 */
import type { Counter, CounterStore } from "./counter-store.ts";

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

export interface Blocked {
  blocked: true;
  retryAfterSeconds: number;
}

/** One attempt, counted as a failure until it is released or cancelled. */
export interface Reservation {
  blocked: false;
  /** The failures in the window counting this attempt, should it fail. */
  failures: number;
  /** How long to wait before answering, should it fail. */
  delayMs: number;
  /** Whether this attempt, should it fail, is the one that reaches the account's limit. */
  reachesLimit: boolean;
  /**
   * Counts the same attempt against `account` too, once the attempt names it
   * (a passkey names its owner only after the ceremony). When the account is
   * over its limit this returns Blocked and the address's unit stays held.
   */
  extend(account: string): Promise<Reservation | Blocked>;
  /** The attempt succeeded: give its units back and clear its account+IP counter. */
  release(): Promise<void>;
  /** The attempt was never evaluated (refused before verification, server busy): give its units back. */
  cancel(): Promise<void>;
}

export interface SignInLimiter {
  readonly maxFailures: number;
  /**
   * Counts an attempt for `account` (a normalised email) from `ip` before it
   * is verified; with no account (a passkey not yet identified) only the IP
   * counts. Blocked when any counter is over its limit (nothing stays counted).
   */
  reserve(account: string | undefined, ip: string): Promise<Reservation | Blocked>;
}

export function createSignInLimiter(store: CounterStore, limits: SignInLimits = defaultSignInLimits): SignInLimiter {
  const ipKey = (ip: string) => `ip:${ip}`;
  const accountKey = (account: string) => `acct:${account}`;
  const accountIpKey = (account: string, ip: string) => `acctip:${account}|${ip}`;

  const blocked = (over: Counter[]): Blocked => {
    const resetAt = Math.max(...over.map((c) => c.resetAt));
    return { blocked: true, retryAfterSeconds: Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)) };
  };

  /** Reserves the account and account+IP units; refunds them when either is over the limit. */
  async function reserveAccount(account: string, ip: string): Promise<[Counter, Counter] | Blocked> {
    const [a, ai] = await Promise.all([store.increment(accountKey(account), limits.windowMs), store.increment(accountIpKey(account, ip), limits.windowMs)]);
    const over = [a, ai].filter((c) => c.count > limits.maxFailures);
    if (over.length === 0) return [a, ai];
    await Promise.all([store.decrement(accountKey(account)), store.decrement(accountIpKey(account, ip))]);
    return blocked(over);
  }

  function reservation(ip: string, byIp: Counter, byAccount?: { account: string; a: Counter; ai: Counter }): Reservation {
    // Delays follow the account's failures; without an account, the address's
    // failures scaled to the account limit.
    const failures = byAccount
      ? Math.max(byAccount.a.count, byAccount.ai.count)
      : Math.ceil((byIp.count * limits.maxFailures) / limits.maxFailuresPerIp);
    let settled = false;
    const settle = () => {
      if (settled) throw new Error("this sign-in reservation was already released or cancelled");
      settled = true;
    };
    return {
      blocked: false,
      failures,
      delayMs: failures <= 1 ? 0 : Math.min(limits.baseDelayMs * 2 ** (failures - 2), 5_000),
      reachesLimit: byAccount !== undefined && failures === limits.maxFailures,
      async extend(account) {
        if (byAccount) throw new Error("this sign-in reservation already counts an account");
        if (settled) throw new Error("this sign-in reservation was already released or cancelled");
        const counted = await reserveAccount(account, ip);
        if (!Array.isArray(counted)) return counted;
        settled = true;
        return reservation(ip, byIp, { account, a: counted[0], ai: counted[1] });
      },
      async release() {
        settle();
        await Promise.all([
          store.decrement(ipKey(ip)),
          byAccount && store.decrement(accountKey(byAccount.account)),
          byAccount && store.reset(accountIpKey(byAccount.account, ip)),
        ]);
      },
      async cancel() {
        settle();
        await Promise.all([
          store.decrement(ipKey(ip)),
          byAccount && store.decrement(accountKey(byAccount.account)),
          byAccount && store.decrement(accountIpKey(byAccount.account, ip)),
        ]);
      },
    };
  }

  return {
    maxFailures: limits.maxFailures,
    async reserve(account, ip) {
      // The address first: an address already over its limit does not touch
      // the account's counters, even for a moment.
      const byIp = await store.increment(ipKey(ip), limits.windowMs);
      if (byIp.count > limits.maxFailuresPerIp) {
        await store.decrement(ipKey(ip));
        return blocked([byIp]);
      }
      const first = reservation(ip, byIp);
      if (account === undefined) return first;
      const extended = await first.extend(account);
      if (extended.blocked) await store.decrement(ipKey(ip));
      return extended;
    },
  };
}
