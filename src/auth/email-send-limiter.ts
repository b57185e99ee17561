/**
 * How many emails one address may be sent by anonymous requests (forgotten
 * password, registration) or a resend in a window, so that Gatehouse cannot
 * be used to flood a mailbox (OWASP Forgot Password Cheat Sheet). Over the
 * limit the request gets its usual answer and nothing is sent: a refusal
 * would tell whether the account exists. Counters live in the app's counter
 * store (shared through Redis when REDIS_URL is set) under a keyed hash of
 * the address, so the store holds no email addresses.
 */
import { createHmac } from "node:crypto";
import type { CounterStore } from "./counter-store.ts";

export interface EmailSendLimits {
  /** Emails per address in a window. */
  max: number;
  windowMs: number;
}

export const defaultEmailSendLimits: EmailSendLimits = { max: 5, windowMs: 60 * 60 * 1000 };

export interface EmailSendLimiter {
  /** Counts one email to `email` (normalised); false when the address is over its limit. */
  allow(email: string): Promise<boolean>;
}

export function createEmailSendLimiter(store: CounterStore, key: string, limits: EmailSendLimits = defaultEmailSendLimits): EmailSendLimiter {
  return {
    async allow(email) {
      const counted = await store.increment(`email-send:${createHmac("sha256", key).update(email).digest("base64url")}`, limits.windowMs);
      return counted.count <= limits.max;
    },
  };
}
