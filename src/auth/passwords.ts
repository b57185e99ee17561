/**
 * Password hashing with argon2id (RFC 9106; OWASP Password Storage Cheat
 * Sheet). Parameters come from configuration and are at least OWASP's
 * (m=19 MiB, t=2, p=1). Every hash and verification runs through one
 * semaphore, so concurrent argon2 work is capped and its queue bounded.
 */
import { randomBytes } from "node:crypto";
import { availableParallelism } from "node:os";
import argon2 from "argon2";
import type { Config } from "../config.ts";
import { isCommonPassword } from "./common-passwords.ts";
import { createSemaphore } from "./semaphore.ts";

export type Argon2Params = Config["argon2"];

/**
 * The argon2 work of this process: one hash per CPU at a time, and a queue of
 * 32 per CPU (a second or two of work) beyond which hashing is refused with
 * SemaphoreFullError (from ./semaphore.ts) rather than queued without bound.
 */
export const argon2Semaphore = createSemaphore({ maxConcurrent: availableParallelism(), maxQueue: 32 * availableParallelism() });

export const passwordMinLength = 8;
export const passwordMaxLength = 256;

/** Returns why a new password is unacceptable, or undefined when it is fine. */
export function checkPasswordPolicy(password: string): string | undefined {
  const length = [...password].length;
  if (length < passwordMinLength) return `password must be at least ${passwordMinLength} characters`;
  if (length > passwordMaxLength) return `password must be at most ${passwordMaxLength} characters`;
  if (isCommonPassword(password)) return "password is too common: choose one that is not on lists of breached passwords";
  return undefined;
}

/** Hashes a password into an argon2id PHC string; SemaphoreFullError when too much argon2 work is queued. */
export async function hashPassword(password: string, params: Argon2Params): Promise<string> {
  return argon2Semaphore.run(() => argon2.hash(password, { type: argon2.argon2id, ...params }));
}

/**
 * Verifies a password against a PHC string; false for a malformed hash,
 * SemaphoreFullError when too much argon2 work is queued.
 */
export async function verifyPassword(hash: string, password: string): Promise<boolean> {
  return argon2Semaphore.run(async () => {
    try {
      return await argon2.verify(hash, password);
    } catch {
      return false;
    }
  });
}

let dummy: Promise<string> | undefined;

/**
 * A hash of a random password with the same parameters, verified when the
 * email is unknown so that an unknown email costs as much as a wrong password
 * and response times do not reveal which accounts exist.
 */
export function dummyPasswordHash(params: Argon2Params): Promise<string> {
  // A refusal (queue full) must not be remembered as the hash.
  dummy ??= hashPassword(randomBytes(18).toString("base64"), params).catch((error: unknown) => {
    dummy = undefined;
    throw error;
  });
  return dummy;
}
