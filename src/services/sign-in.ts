/**
 * Password sign-in (SPEC sections 9 and 10): the same answer and the same
 * cost for an unknown email, a wrong password or a disabled account; layered
 * brute-force limits; every outcome audited.
 */
import type { Database } from "../db/database.ts";
import { findUserByEmail, type UserRow } from "../db/users.ts";
import { dummyPasswordHash, verifyPassword, type Argon2Params } from "../auth/passwords.ts";
import type { SignInLimiter } from "../auth/sign-in-limiter.ts";
import { recordAuditEvent } from "./audit.ts";

export interface SignInDeps {
  db: Database;
  limiter: SignInLimiter;
  argon2: Argon2Params;
  /** Counts outcomes for /metrics. */
  onOutcome?: (outcome: "success" | "failure" | "locked") => void;
}

export interface SignInAttempt {
  email: string;
  password: string;
  ip: string;
  userAgent?: string;
  clientId?: string;
}

export type SignInResult =
  | { ok: true; user: UserRow }
  | { ok: false; reason: "invalid_credentials" }
  | { ok: false; reason: "rate_limited"; retryAfterSeconds: number };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function signInWithPassword(deps: SignInDeps, attempt: SignInAttempt): Promise<SignInResult> {
  const { db, limiter } = deps;
  const account = attempt.email.trim().toLowerCase();
  const where = { ip: attempt.ip, userAgent: attempt.userAgent, clientId: attempt.clientId };

  const limit = await limiter.check(account, attempt.ip);
  if (limit.blocked) {
    deps.onOutcome?.("locked");
    return { ok: false, reason: "rate_limited", retryAfterSeconds: limit.retryAfterSeconds };
  }

  const user = account.length <= 254 ? await findUserByEmail(db.prisma, account) : null;
  // Always run one argon2 verification, against a dummy hash when there is no
  // user or no password, so that timing does not tell which emails exist.
  const valid = await verifyPassword(user?.passwordHash ?? (await dummyPasswordHash(deps.argon2)), attempt.password);
  const reason = !user ? "unknown_email" : !user.passwordHash ? "no_password" : !valid ? "wrong_password" : user.disabled ? "disabled" : undefined;

  if (reason === undefined && user) {
    await limiter.recordSuccess(account, attempt.ip);
    await recordAuditEvent(db, { type: "sign_in.succeeded", actorType: "user", actorId: user.id, userId: user.id, ...where, data: { method: "password" } });
    deps.onOutcome?.("success");
    return { ok: true, user };
  }

  const { delayMs, failures } = await limiter.recordFailure(account, attempt.ip);
  await recordAuditEvent(db, {
    type: "sign_in.failed",
    actorType: "user",
    actorId: user?.id,
    userId: user?.id,
    ...where,
    data: { method: "password", reason, ...(user ? {} : { email: account.slice(0, 254) }) },
  });
  if (failures === deps.limiter.maxFailures) {
    await recordAuditEvent(db, { type: "sign_in.locked", actorType: "system", userId: user?.id, ...where, data: { email: account.slice(0, 254), failures } });
  }
  deps.onOutcome?.("failure");
  await sleep(delayMs);
  return { ok: false, reason: "invalid_credentials" };
}
