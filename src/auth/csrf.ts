/**
 * CSRF tokens bound to what the form acts on (an interaction uid, a session):
 * HMAC-SHA256 of the binding under a key derived from the master key. They are
 * stateless, so any instance can check them, and useless for another
 * interaction or session (OWASP CSRF Prevention Cheat Sheet, synchronizer token pattern).
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export interface Csrf {
  token(binding: string): string;
  verify(binding: string, token: unknown): boolean;
}

export function createCsrf(key: string): Csrf {
  const token = (binding: string) => createHmac("sha256", key).update(`csrf:${binding}`).digest("base64url");
  return {
    token,
    verify(binding, candidate) {
      if (typeof candidate !== "string") return false;
      const expected = Buffer.from(token(binding));
      const given = Buffer.from(candidate);
      return given.length === expected.length && timingSafeEqual(given, expected);
    },
  };
}
