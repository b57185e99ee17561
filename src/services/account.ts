/**
 * What a signed-in user can do on /account (SPEC section 9): see and end
 * their other sessions, and change their password, which ends the other
 * sessions and revokes every grant (SPEC section 7).
 */
import type { Database } from "../db/database.ts";
import { deleteOtherSessions } from "../db/sessions.ts";
import { deleteGrantsAndTokens } from "../db/revocations.ts";
import { checkPasswordPolicy, hashPassword, verifyPassword, type Argon2Params } from "../auth/passwords.ts";
import type { SignInLimiter } from "../auth/sign-in-limiter.ts";
import type { UserRow } from "../db/users.ts";
import { appendAuditEvent, type AuditInput } from "./audit.ts";
import { AppError } from "../errors.ts";

type Context = Pick<AuditInput, "ip" | "userAgent">;

/**
 * "Sign out other devices": ends every session of the user but the current
 * one, named by its stored ids (StoredIds.candidates of its cookie value).
 */
export async function signOutOtherSessions(db: Database, user: UserRow, currentSessionIds: readonly string[], context: Context): Promise<number> {
  return db.prisma.$transaction(async (tx) => {
    const sessions = await deleteOtherSessions(tx, user.id, currentSessionIds);
    await appendAuditEvent(tx, db.provider, { type: "sessions.revoked", actorType: "user", actorId: user.id, userId: user.id, ...context, data: { sessions, scope: "other_devices" } });
    return sessions;
  });
}

/**
 * Changes a user's own password. The current password is required (and
 * counts against the sign-in limits); the new one must pass the policy.
 * Other sessions end and all grants are revoked, in one transaction.
 */
export async function changeOwnPassword(
  db: Database,
  deps: { argon2: Argon2Params; limiter: SignInLimiter },
  user: UserRow,
  input: { currentPassword: string; newPassword: string; currentSessionIds: readonly string[] },
  context: Context & { ip: string },
): Promise<void> {
  const limit = await deps.limiter.check(user.email, context.ip);
  if (limit.blocked) throw new AppError("too_many_requests", "Too many failed attempts. Try again later.");
  if (user.passwordHash && !(await verifyPassword(user.passwordHash, input.currentPassword))) {
    await deps.limiter.recordFailure(user.email, context.ip);
    throw new AppError("invalid_password", "The current password is not correct.");
  }
  const problem = checkPasswordPolicy(input.newPassword);
  if (problem) throw new AppError("invalid_password", problem.charAt(0).toUpperCase() + problem.slice(1) + ".");
  const passwordHash = await hashPassword(input.newPassword, deps.argon2);
  await db.prisma.$transaction(async (tx) => {
    await tx.user.update({ where: { id: user.id }, data: { passwordHash } });
    const sessions = await deleteOtherSessions(tx, user.id, input.currentSessionIds);
    const grants = await deleteGrantsAndTokens(tx, { accountId: user.id });
    await appendAuditEvent(tx, db.provider, {
      type: "password.changed",
      actorType: "user",
      actorId: user.id,
      userId: user.id,
      ...context,
      data: { revoked: { sessions, grants } },
    });
  });
}
