/**
 * Two-step verification (docs/two-step-verification.md): the authenticator
 * app's secret (RFC 6238 TOTP), sealed with the master key ring and bound to
 * its row; ten single-use recovery codes stored hashed; turning it on, off,
 * regenerating codes and the operator's reset. The check of a code at
 * sign-in goes through the sign-in policy (services/sign-in.ts).
 */
import { createHash, randomUUID } from "node:crypto";
import { transaction, type Database } from "../db/transaction.ts";
import { sealContext, type MasterKeyRing } from "../crypto/master-keys.ts";
import {
  advanceTotpStep,
  confirmTotp,
  countUnusedRecoveryCodes,
  deleteRecoveryCodes,
  deleteTotp,
  findTotp,
  replaceRecoveryCodes,
  upsertPendingTotp,
  useRecoveryCode,
} from "../db/mfa.ts";
import { findUserByEmail, findUserById } from "../db/users.ts";
import { generateRecoveryCode, generateTotpSecret, hashRecoveryCode, matchTotpStep, totpUri } from "../auth/totp.ts";
import { appendAuditEvent, type AuditInput } from "./audit.ts";
import { revokeUserAccess, type RevocationCount } from "./revocation.ts";
import { noticeMfaChanged } from "./mfa-notices.ts";
import { queueAccountNotice } from "../email/notices.ts";
import type { Actor } from "./actor.ts";
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";

export { acrOf, mfaAcr, singleFactorAcr, withSecondFactor } from "../protocol.ts";

export const recoveryCodeCount = 10;

/** The context the TOTP secret of `userId` is sealed for (crypto/master-keys.ts). */
export function totpSecretContext(userId: string): string {
  return sealContext("UserTotp", userId, "totp_secret");
}

export interface MfaStatus {
  totp: boolean;
  recoveryCodesLeft: number;
}

export async function getMfaStatus(db: Database, userId: string): Promise<MfaStatus> {
  const [row, left] = await Promise.all([findTotp(db, userId), countUnusedRecoveryCodes(db, userId)]);
  return { totp: Boolean(row?.confirmedAt), recoveryCodesLeft: left };
}

export interface TotpSetup {
  /** Base32, for typing into the app. */
  secret: string;
  uri: string;
  /** The otpauth:// URI as an inline SVG QR code, drawn here (no third-party service). */
  qrSvg: string;
}

/**
 * A fingerprint of a TOTP key (SHA-256, base64url): what a set-up page
 * remembers of the key it showed, so that it shows again, and turns on,
 * only that key and never one another set-up made meanwhile.
 */
export function totpKeyFingerprint(secret: string): string {
  return createHash("sha256").update(secret).digest("base64url");
}

/**
 * Starts setting up an authenticator app: a new secret, stored unconfirmed
 * (it does nothing until a first code confirms it). With `reuse`, an
 * unconfirmed secret already stored is shown again instead (a page reload, a
 * wrong first code). Refused when the app is already on.
 */
export async function startTotpSetup(db: Database, ring: MasterKeyRing, user: { id: string; email: string }, issuer: string, reuse = false): Promise<TotpSetup> {
  const existing = await findTotp(db, user.id);
  if (existing?.confirmedAt) throw new AppError("conflict", "The authenticator app is already turned on.");
  let secret: string;
  if (reuse && existing) {
    secret = await ring.decrypt(existing.secretSealed, totpSecretContext(user.id));
  } else {
    secret = generateTotpSecret();
    const sealed = await ring.encrypt(secret, totpSecretContext(user.id));
    const stored = await transaction(db, (tx) => upsertPendingTotp(tx, user.id, sealed));
    if (!stored) throw new AppError("conflict", "The authenticator app is already turned on.");
  }
  const issuerName = new URL(issuer).host;
  const uri = totpUri(secret, user.email, issuerName);
  // Loaded on first use: most processes never draw a QR code.
  const { default: QRCode } = await import("qrcode");
  const qrSvg = await QRCode.toString(uri, { type: "svg", errorCorrectionLevel: "M", margin: 2 });
  return { secret, uri, qrSvg };
}

/**
 * Turns the authenticator app on once a first code from it is right, and
 * gives the ten recovery codes (shown once). The code's step is recorded as
 * used, so it cannot also sign in. undefined when the code is wrong.
 */
export async function confirmTotpSetup(
  db: Database,
  ring: MasterKeyRing,
  userId: string,
  code: string,
  actor: Actor,
  config?: Config,
  /** The fingerprint of the key the set-up showed (totpKeyFingerprint): another stored key is not turned on. */
  expectedKey?: string,
): Promise<string[] | undefined> {
  const row = await findTotp(db, userId);
  if (!row) throw new AppError("invalid_request", "Start setting up the authenticator app first.");
  if (row.confirmedAt) throw new AppError("conflict", "The authenticator app is already turned on.");
  const secret = await ring.decrypt(row.secretSealed, totpSecretContext(userId));
  if (expectedKey !== undefined && totpKeyFingerprint(secret) !== expectedKey) return undefined;
  const step = matchTotpStep(secret, code);
  if (step === undefined) return undefined;
  const codes = Array.from({ length: recoveryCodeCount }, generateRecoveryCode);
  const confirmed = await transaction(db, async (tx) => {
    if (!(await confirmTotp(tx, userId, row.secretSealed, step))) return false;
    await replaceRecoveryCodes(tx, userId, codes.map((c) => ({ id: randomUUID(), codeHash: hashRecoveryCode(c) })));
    await noticeMfaChanged({ db, tx, actor, config }, userId, "enabled");
    return true;
  });
  if (!confirmed) throw new AppError("conflict", "The authenticator app was changed meanwhile. Start again.");
  return codes;
}

/** Turns the authenticator app off: removes the secret and the recovery codes. */
export async function turnOffTotp(db: Database, userId: string, actor: Actor, config?: Config): Promise<void> {
  await transaction(db, async (tx) => {
    const removed = await deleteTotp(tx, userId);
    await deleteRecoveryCodes(tx, userId);
    if (removed) await noticeMfaChanged({ db, tx, actor, config }, userId, "disabled");
  });
}

/** Ten new recovery codes, replacing the old ones (used or not); only with the app turned on. */
export async function regenerateRecoveryCodes(db: Database, userId: string, actor: Actor): Promise<string[]> {
  const row = await findTotp(db, userId);
  if (!row?.confirmedAt) throw new AppError("conflict", "Turn on the authenticator app first.");
  const codes = Array.from({ length: recoveryCodeCount }, generateRecoveryCode);
  await transaction(db, async (tx) => {
    await replaceRecoveryCodes(tx, userId, codes.map((c) => ({ id: randomUUID(), codeHash: hashRecoveryCode(c) })));
    await appendAuditEvent(tx, db, { type: "mfa.recovery_codes_generated", ...actor, userId, data: { count: recoveryCodeCount } });
  });
  return codes;
}

/**
 * Checks a code from the authenticator app and records its step as used, by
 * compare-and-set (db/mfa.ts advanceTotpStep): a code is accepted once, and
 * never after a later one. The caller applies the brute-force limits.
 */
export async function checkTotpCode(db: Database, ring: MasterKeyRing, userId: string, code: string): Promise<"ok" | "wrong_code" | "replayed" | "no_totp"> {
  const row = await findTotp(db, userId);
  if (!row?.confirmedAt) return "no_totp";
  const step = matchTotpStep(await ring.decrypt(row.secretSealed, totpSecretContext(userId)), code);
  if (step === undefined) return "wrong_code";
  return (await advanceTotpStep(db, userId, step)) ? "ok" : "replayed";
}

/**
 * Uses a recovery code (once: compare-and-set on usedAt), with its
 * mfa.recovery_code_used audit event (`audit`, when given) in the same
 * transaction. The caller applies the brute-force limits.
 */
export async function checkRecoveryCode(
  db: Database,
  userId: string,
  code: string,
  audit?: Omit<AuditInput, "type" | "userId" | "data">,
  config?: Config,
): Promise<{ ok: true; left: number } | { ok: false; reason: "wrong_code" }> {
  if (code.length > 64) return { ok: false, reason: "wrong_code" };
  return transaction(db, async (tx) => {
    if (!(await useRecoveryCode(tx, userId, hashRecoveryCode(code)))) return { ok: false, reason: "wrong_code" } as const;
    const left = await countUnusedRecoveryCodes(tx, userId);
    if (audit) await appendAuditEvent(tx, db, { ...audit, type: "mfa.recovery_code_used", userId, data: { recovery_codes_left: left } });
    // A used recovery code may be someone else's: the owner is told, with how many are left.
    const user = await findUserById(tx, userId);
    if (user) await queueAccountNotice({ db, config }, tx, user, { kind: "recovery-code-used", left });
    return { ok: true, left } as const;
  });
}

/**
 * The operator's reset (`gatehouse users reset-mfa`, DELETE
 * /admin/v1/users/{id}/mfa): removes the authenticator app and the recovery
 * codes and revokes the user's sessions and grants, in one transaction with
 * its audit event; the user sets two-step verification up again.
 */
export async function resetMfa(db: Database, userId: string, actor: Actor, config?: Config): Promise<RevocationCount> {
  const user = await findUserById(db, userId);
  if (!user) throw new AppError("not_found", "user not found");
  return transaction(db, async (tx) => {
    const totp = await deleteTotp(tx, userId);
    const recoveryCodes = await deleteRecoveryCodes(tx, userId);
    const revoked = await revokeUserAccess(tx, userId);
    const event = { type: "mfa.reset", data: { totp, recovery_codes: recoveryCodes, revoked } };
    if (totp) await noticeMfaChanged({ db, tx, actor, auditEvent: event, config }, userId, "disabled");
    else await appendAuditEvent(tx, db, { ...event, ...actor, userId });
    return revoked;
  });
}

/** The CLI's form: the user named by email. */
export async function resetMfaByEmail(db: Database, email: string, actor: Actor, config?: Config): Promise<{ id: string; email: string; revoked: RevocationCount }> {
  const user = await findUserByEmail(db, email.trim().toLowerCase());
  if (!user) throw new AppError("not_found", `no user with email ${email}`);
  return { id: user.id, email: user.email, revoked: await resetMfa(db, user.id, actor, config) };
}
