/**
 * Revocation is a row delete (docs/ARCHITECTURE.md): removing a grant's row and the
 * rows of every code and token issued under it revokes them at once on every
 * instance, since each request reads the database. Every revocation is
 * audited in the same transaction.
 */
import { transaction, type Database, type Tx } from "../db/transaction.ts";
import { deleteClientCredentialsTokens, deleteGrantsAndTokens, deleteSessionsOfAccount, deleteSessionsWhere } from "../db/revocations.ts";
import { findSessionAccount } from "../db/sessions.ts";
import { findGrantParties } from "../db/grants.ts";
import { appendAuditEvent } from "./audit.ts";
import type { Actor } from "./actor.ts";
import { AppError } from "../errors.ts";

export interface RevocationCount {
  grants: number;
  sessions: number;
}

/** Inside a transaction: ends a user's sessions and revokes their grants. */
export async function revokeUserAccess(tx: Tx, userId: string): Promise<RevocationCount> {
  const sessions = await deleteSessionsOfAccount(tx, userId);
  const grants = await deleteGrantsAndTokens(tx, { accountId: userId });
  return { grants, sessions };
}

/**
 * Sign out everywhere: ends every session of a user and revokes their grants,
 * so that offline (refresh) tokens, which outlive sessions by design, stop too:
 * after a revoking DELETE the refresh token is refused (README, "Admin API").
 */
export async function revokeUserSessions(db: Database, userId: string, actor: Actor): Promise<RevocationCount> {
  return transaction(db, async (tx) => {
    const revoked = await revokeUserAccess(tx, userId);
    await appendAuditEvent(tx, db, { type: "sessions.revoked", ...actor, userId, data: { ...revoked, scope: "everywhere" } });
    return revoked;
  });
}

/** Ends one session; not_found when there is no such session. */
export async function revokeSession(db: Database, sessionId: string, actor: Actor): Promise<void> {
  await transaction(db, async (tx) => {
    const session = await findSessionAccount(tx, sessionId);
    if (!session) throw new AppError("not_found", "no such session");
    await deleteSessionsWhere(tx, { id: sessionId });
    await appendAuditEvent(tx, db, { type: "session.revoked", ...actor, userId: session.accountId, data: { session_id: sessionId } });
  });
}

/** Revokes one grant and everything issued under it. */
export async function revokeGrant(db: Database, grantId: string, actor: Actor): Promise<void> {
  await transaction(db, async (tx) => {
    const grant = await findGrantParties(tx, grantId);
    if (!grant) throw new AppError("not_found", "no such grant");
    await deleteGrantsAndTokens(tx, { grantId });
    await appendAuditEvent(tx, db, { type: "grant.revoked", ...actor, userId: grant.accountId, clientId: grant.clientId, data: { grant_id: grantId } });
  });
}

/** Revokes everything a user granted, or only what they granted one client. */
export async function revokeUserGrants(db: Database, userId: string, clientId: string | undefined, actor: Actor): Promise<number> {
  return transaction(db, async (tx) => {
    const grants = await deleteGrantsAndTokens(tx, { accountId: userId, clientId });
    await appendAuditEvent(tx, db, { type: "grants.revoked", ...actor, userId, clientId, data: { grants } });
    return grants;
  });
}

/**
 * Bulk revocation (README, "Admin API"): grants matching every given filter, and
 * the sessions of `userId` (sessions belong to users, not to clients).
 * Idempotent: a second call finds nothing left and reports zeros.
 */
export async function bulkRevoke(
  db: Database,
  filter: { userId?: string; clientId?: string; issuedBefore?: Date },
  actor: Actor,
): Promise<RevocationCount> {
  if (!filter.userId && !filter.clientId) throw new AppError("invalid_request", "give user_id, client_id or both");
  return transaction(db, async (tx) => {
    const grants = await deleteGrantsAndTokens(tx, { accountId: filter.userId, clientId: filter.clientId, issuedBefore: filter.issuedBefore });
    // Tokens a client holds for itself (client_credentials) have no grant.
    if (filter.clientId && !filter.userId) await deleteClientCredentialsTokens(tx, { clientId: filter.clientId, issuedBefore: filter.issuedBefore });
    const sessions = filter.userId && !filter.clientId ? await deleteSessionsWhere(tx, { accountId: filter.userId, issuedBefore: filter.issuedBefore }) : 0;
    await appendAuditEvent(tx, db, {
      type: "revocation.bulk",
      ...actor,
      userId: filter.userId,
      clientId: filter.clientId,
      data: { issued_before: filter.issuedBefore?.toISOString(), revoked: { grants, sessions } },
    });
    return { grants, sessions };
  });
}
