/**
 * What a signed-in user can do on /account (README, "Security"; docs/ARCHITECTURE.md): see and end
 * their other sessions, and change their password, which ends the other
 * sessions and revokes every grant (README, "The gatehouse command").
 */
import { transaction, type Database } from "../db/transaction.ts";
import { deleteOtherSessions } from "../db/sessions.ts";
import { deleteGrantsAndTokens } from "../db/revocations.ts";
import { updateUserRow } from "../db/users.ts";
import { checkPasswordPolicy, hashPassword, verifyPassword, type Argon2Params } from "../auth/passwords.ts";
import { SemaphoreFullError } from "../auth/semaphore.ts";
import type { SignInLimiter } from "../auth/sign-in-limiter.ts";
import type { UserRow } from "../db/users.ts";
import { appendAuditEvent, type AuditInput } from "./audit.ts";
import { AppError } from "../errors.ts";
import type { Config } from "../config.ts";
import { queueAccountNotice } from "../email/notices.ts";
import { supersedeEmailLinks } from "../db/email-links.ts";

type Context = Pick<AuditInput, "ip" | "userAgent">;

/**
 * "Sign out other devices": ends every session of the user but the current
 * one, and revokes every grant except those made in the current session
 * (`current.grantIds`; the session is named by its stored ids,
 * StoredIds.candidates of its cookie value), so that what the other devices hold (access and
 * refresh tokens, offline grants included) stops working too.
 */
export async function signOutOtherSessions(
  db: Database,
  user: UserRow,
  current: { sessionIds: readonly string[]; grantIds: readonly string[] },
  context: Context,
): Promise<{ sessions: number; grants: number }> {
  return transaction(db, async (tx) => {
    const sessions = await deleteOtherSessions(tx, user.id, current.sessionIds);
    const grants = await deleteGrantsAndTokens(tx, { accountId: user.id, exceptGrantIds: current.grantIds });
    await appendAuditEvent(tx, db, { type: "sessions.revoked", actorType: "user", actorId: user.id, userId: user.id, ...context, data: { sessions, grants, scope: "other_devices" } });
    return { sessions, grants };
  });
}

/**
 * Changes a user's own password. The current password is required and is
 * checked like a sign-in (reserve a unit on the sign-in limits, verify,
 * release on success: OWASP Authentication Cheat Sheet, "Change password
 * feature"); the new one must pass the policy. Other sessions end and all
 * grants are revoked, and the owner is emailed a notice, in one transaction.
 */
export async function changeOwnPassword(
  db: Database,
  deps: { argon2: Argon2Params; limiter: SignInLimiter; config: Config },
  user: UserRow,
  input: { currentPassword: string; newPassword: string; currentSessionIds: readonly string[] },
  context: Context & { ip: string },
): Promise<void> {
  if (user.passwordHash) {
    const reservation = await deps.limiter.reserve(user.email, context.ip);
    if (reservation.blocked) throw new AppError("too_many_requests", "Too many failed attempts. Try again later.");
    const valid = await argon2Work(verifyPassword(user.passwordHash, input.currentPassword), () => reservation.cancel());
    // A wrong password stays counted: the reservation is the failure.
    if (!valid) throw new AppError("invalid_password", "The current password is not correct.");
    await reservation.release();
  }
  const problem = checkPasswordPolicy(input.newPassword);
  if (problem) throw new AppError("invalid_password", problem.charAt(0).toUpperCase() + problem.slice(1) + ".");
  const passwordHash = await argon2Work(hashPassword(input.newPassword, deps.argon2));
  await transaction(db, async (tx) => {
    await updateUserRow(tx, user.id, { passwordHash });
    // Older reset and invitation links must not replace the new password.
    await supersedeEmailLinks(tx, user.id);
    const sessions = await deleteOtherSessions(tx, user.id, input.currentSessionIds);
    const grants = await deleteGrantsAndTokens(tx, { accountId: user.id });
    await appendAuditEvent(tx, db, {
      type: "password.changed",
      actorType: "user",
      actorId: user.id,
      userId: user.id,
      ...context,
      data: { revoked: { sessions, grants } },
    });
    await queueAccountNotice({ db, config: deps.config }, tx, user, { kind: "password-changed" });
  });
}

/** Awaits argon2 work, calling `onError` if it fails; a full argon2 queue becomes a 429 the page can show. */
async function argon2Work<T>(work: Promise<T>, onError?: () => Promise<void>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    await onError?.();
    if (!(error instanceof SemaphoreFullError)) throw error;
    throw new AppError("too_many_requests", "The server is busy. Try again in a moment.");
  }
}
