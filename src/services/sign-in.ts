/**
 * Signing in, with a password or a passkey, through one policy (OWASP
 * Authentication Cheat Sheet: "Authentication and error messages", "Protect
 * against automated attacks"): the same answer and the same cost for an
 * unknown email, a wrong password or a disabled account; layered brute-force
 * limits, reserved before any secret is verified and released on success;
 * every outcome audited and counted; growing delays before the hard limit.
 */
import { createHmac } from "node:crypto";
import type { AuthenticationResponseJSON } from "@simplewebauthn/server";
import type { Database } from "../db/database.ts";
import { findUserByEmail, findUserById, type UserRow } from "../db/users.ts";
import { dummyPasswordHash, verifyPassword, type Argon2Params } from "../auth/passwords.ts";
import { SemaphoreFullError } from "../auth/semaphore.ts";
import type { RelyingParty } from "../auth/passkeys.ts";
import type { StoredIds } from "../crypto/stored-ids.ts";
import type { Reservation, SignInLimiter } from "../auth/sign-in-limiter.ts";
import { finishPasskeyAuthentication } from "./passkeys.ts";
import { recordAuditEvent } from "./audit.ts";
import type { MasterKeyRing } from "../crypto/master-keys.ts";
import { checkRecoveryCode, checkTotpCode } from "./mfa.ts";
import { withSecondFactor } from "../protocol.ts";
import type { Config } from "../config.ts";

export type SignInMethod = "password" | "passkey" | "totp" | "recovery_code";
/** first_factor: right, with a second factor still due (a `sign_in.first_factor` event, not a sign-in yet). */
export type SignInOutcome = "success" | "first_factor" | "failure" | "locked" | "busy";

export interface SignInDeps {
  db: Database;
  limiter: SignInLimiter;
  argon2: Argon2Params;
  /** Key of the keyed hash that stands for an unknown email in the audit log (derived from the master key). */
  emailHashKey: string;
  /** Counts outcomes for /metrics. */
  onOutcome?: (method: SignInMethod, outcome: SignInOutcome) => void;
  /** For the email sent when a recovery code is used; without it, none is. */
  config?: Config;
}

/** Where an attempt comes from, for limits and audit. */
export interface SignInContext {
  ip: string;
  userAgent?: string;
  clientId?: string;
  /**
   * Whether a right first factor still needs a second (two-step
   * verification, interaction/second-factor.ts): then it is audited as
   * `sign_in.first_factor`, and only the second step as `sign_in.succeeded`.
   */
  secondFactorDue?: (user: Pick<UserRow, "id">, amr: string[]) => Promise<boolean>;
}

export interface PasswordAttempt extends SignInContext {
  email: string;
  password: string;
}

export interface PasskeyAttempt extends SignInContext {
  rp: RelyingParty;
  /** How the interaction's uid is stored (its keyed hash), to match the challenge to it. */
  storedIds: StoredIds;
  interactionUid: string;
  challengeId: string;
  response: AuthenticationResponseJSON;
  log: { warn(obj: object, msg: string): void };
}

export type SignInResult =
  /** `amr`: the authentication methods references (RFC 8176) for the login result. */
  | { ok: true; user: UserRow; amr: string[] }
  | { ok: false; reason: "invalid_credentials" }
  | { ok: false; reason: "rate_limited"; retryAfterSeconds: number }
  /** Too much argon2 work queued on this instance: answer 503 with Retry-After. */
  | { ok: false; reason: "busy"; retryAfterSeconds: number };

/** What checking a secret found: the user, or why not (and whom, when known). */
type Verification =
  | { ok: true; user: UserRow; amr: string[]; data?: Record<string, unknown> }
  | { ok: false; reason: string; user?: Pick<UserRow, "id" | "email"> };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The keyed hash (HMAC-SHA256, hex) that stands for an email in the audit log
 * when no account has it: often a password typed into the email field, which
 * must not be stored in clear. An operator with the key can still match an
 * email they are asked about.
 */
export function hashAuditEmail(key: string, email: string): string {
  return createHmac("sha256", Buffer.from(key, "base64url")).update(email).digest("hex");
}

/**
 * One attempt through the policy: reserve a unit on the limits before
 * verifying (refuse with rate_limited, without verifying, when over), verify,
 * then release on success or keep the failure counted, audit, count for
 * metrics and wait the growing delay. `account` is the normalised email when
 * the attempt names one up front; otherwise the account the verification
 * names is reserved once known. The second factor is one more `method`
 * with its own `verify` (verifySecondFactor); outside sign-in (the password
 * change) the same limiter.reserve / release applies.
 */
async function attemptSignIn(
  deps: SignInDeps,
  method: SignInMethod,
  context: SignInContext,
  account: string | undefined,
  verify: () => Promise<Verification>,
): Promise<SignInResult> {
  const { db, limiter } = deps;
  const where = { ip: context.ip, userAgent: context.userAgent, clientId: context.clientId };

  const reserved = await limiter.reserve(account, context.ip);
  if (reserved.blocked) {
    deps.onOutcome?.(method, "locked");
    return { ok: false, reason: "rate_limited", retryAfterSeconds: reserved.retryAfterSeconds };
  }
  let reservation: Reservation = reserved;

  let verified: Verification;
  try {
    verified = await verify();
  } catch (error) {
    await reservation.cancel();
    if (!(error instanceof SemaphoreFullError)) throw error;
    deps.onOutcome?.(method, "busy");
    return { ok: false, reason: "busy", retryAfterSeconds: error.retryAfterSeconds };
  }

  // The attempt named its account only now (a passkey): that account's limit holds too.
  if (account === undefined && verified.user) {
    const extended = await reservation.extend(verified.user.email);
    if (extended.blocked) {
      await reservation.cancel();
      await recordAuditEvent(db, {
        type: "sign_in.failed",
        actorType: "user",
        actorId: verified.user.id,
        userId: verified.user.id,
        ...where,
        data: { method, reason: "locked", ...(verified.ok ? {} : { check: verified.reason }) },
      });
      deps.onOutcome?.(method, "locked");
      return { ok: false, reason: "rate_limited", retryAfterSeconds: extended.retryAfterSeconds };
    }
    reservation = extended;
  }

  if (verified.ok) {
    await reservation.release();
    const { user } = verified;
    const firstOnly = (await context.secondFactorDue?.(user, verified.amr)) === true;
    await recordAuditEvent(db, {
      type: firstOnly ? "sign_in.first_factor" : "sign_in.succeeded",
      actorType: "user",
      actorId: user.id,
      userId: user.id,
      ...where,
      data: { method, ...verified.data },
    });
    deps.onOutcome?.(method, firstOnly ? "first_factor" : "success");
    return { ok: true, user, amr: verified.amr };
  }

  const user = verified.user;
  // Unknown accounts are named by a keyed hash: the "email" may be a password.
  const named = user ? {} : account !== undefined ? { email_hash: hashAuditEmail(deps.emailHashKey, account) } : {};
  await recordAuditEvent(db, { type: "sign_in.failed", actorType: "user", actorId: user?.id, userId: user?.id, ...where, data: { method, reason: verified.reason, ...named } });
  if (reservation.reachesLimit) {
    await recordAuditEvent(db, { type: "sign_in.locked", actorType: "system", userId: user?.id, ...where, data: { ...named, failures: reservation.failures } });
  }
  deps.onOutcome?.(method, "failure");
  await sleep(reservation.delayMs);
  return { ok: false, reason: "invalid_credentials" };
}

/**
 * Password sign-in. Always runs one argon2 verification, against a dummy hash
 * when there is no user or no password, so that timing does not tell which
 * emails exist (OWASP Authentication Cheat Sheet, "Authentication responses").
 */
export async function signInWithPassword(deps: SignInDeps, attempt: PasswordAttempt): Promise<SignInResult> {
  const account = attempt.email.trim().toLowerCase();
  return attemptSignIn(deps, "password", attempt, account, async () => {
    const user = account.length <= 254 ? await findUserByEmail(deps.db, account) : null;
    const valid = await verifyPassword(user?.passwordHash ?? (await dummyPasswordHash(deps.argon2)), attempt.password);
    if (!user) return { ok: false, reason: "unknown_email" };
    if (!user.passwordHash) return { ok: false, reason: "no_password", user };
    if (!valid) return { ok: false, reason: "wrong_password", user };
    if (user.disabled) return { ok: false, reason: "disabled", user };
    // Signed up on /register and not verified yet: whoever typed the address
    // may not own it. The same answer as a wrong password, so that signing in
    // right after /register does not tell a new address from a known one.
    if (user.selfRegistered && !user.emailVerified) return { ok: false, reason: "email_unverified", user };
    return { ok: true, user, amr: ["pwd"] };
  });
}

/**
 * Usernameless passkey sign-in (WebAuthn Level 3, section 7.2). Until the
 * credential names its owner only the address's limit applies; then the
 * owner's account limit does too, so a locked account stays locked for
 * passkeys, and the refusal is audited instead of a success.
 */
export async function signInWithPasskey(deps: SignInDeps, attempt: PasskeyAttempt): Promise<SignInResult> {
  return attemptSignIn(deps, "passkey", attempt, undefined, async () => {
    const ceremony = await finishPasskeyAuthentication(deps.db, attempt.rp, attempt.storedIds, attempt.interactionUid, { challengeId: attempt.challengeId, response: attempt.response }, attempt.log);
    if (!ceremony.ok) return ceremony;
    // (A passkey cannot be added before verification, but a row is the truth.)
    if (ceremony.user.selfRegistered && !ceremony.user.emailVerified) return { ok: false, reason: "email_unverified", user: ceremony.user };
    // RFC 8176: "swk" for a synced (multi-device) passkey, whose key lives in
    // software; "hwk" for a device-bound one. User verification (a PIN or
    // biometric on the authenticator) makes it a second factor: "mfa".
    const key = ceremony.deviceType === "multiDevice" ? "swk" : "hwk";
    return { ok: true, user: ceremony.user, amr: ceremony.userVerified ? [key, "mfa"] : [key], data: { passkey_id: ceremony.passkeyId } };
  });
}

export interface SecondFactorAttempt extends SignInContext {
  ring: MasterKeyRing;
  /** The user the first factor named (its password or passkey was right). */
  user: UserRow;
  /** The amr (RFC 8176) of the first factor. */
  firstAmr: readonly string[];
  kind: "totp" | "recovery_code";
  code: string;
}

/**
 * The second step of a sign-in: a code from the authenticator app or a
 * recovery code, through the same limits as a password (reserved against the
 * account before the code is checked, released on success), so wrong codes
 * lock the account like wrong passwords do. A TOTP code is accepted once
 * (RFC 6238 section 5.2); a recovery code once.
 */
export async function verifySecondFactor(deps: SignInDeps, attempt: SecondFactorAttempt): Promise<SignInResult> {
  const { user } = attempt;
  return attemptSignIn(deps, attempt.kind, attempt, user.email, async () => {
    const current = await findUserById(deps.db, user.id);
    if (!current || current.disabled) return { ok: false, reason: "disabled", user };
    const amr = withSecondFactor(attempt.firstAmr);
    if (attempt.kind === "totp") {
      const checked = await checkTotpCode(deps.db, attempt.ring, user.id, attempt.code);
      return checked === "ok" ? { ok: true, user: current, amr } : { ok: false, reason: checked, user };
    }
    const used = await checkRecoveryCode(deps.db, user.id, attempt.code, { actorType: "user", actorId: user.id, ip: attempt.ip, userAgent: attempt.userAgent, clientId: attempt.clientId }, deps.config);
    if (!used.ok) return { ok: false, reason: used.reason, user };
    return { ok: true, user: current, amr, data: { recovery_codes_left: used.left } };
  });
}
