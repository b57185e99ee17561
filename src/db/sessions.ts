/**
 * Queries on oidc-provider Session rows (OidcRecord, model "Session"). A
 * session's row id is the keyed hash of its cookie value (see
 * crypto/stored-ids.ts): it is what operators see and revoke by.
 */
import { clientOf, type Queryable } from "./transaction.ts";

export interface SessionSummary {
  id: string;
  createdAt: Date;
  expiresAt: Date | null;
}

export async function listSessionsOfAccount(db: Queryable, accountId: string, now = new Date()): Promise<SessionSummary[]> {
  return clientOf(db).oidcRecord.findMany({
    where: { model: "Session", accountId, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    select: { id: true, createdAt: true, expiresAt: true },
    orderBy: { createdAt: "desc" },
  });
}

/** The account a session belongs to, or null when there is no such session. */
export async function findSessionAccount(db: Queryable, id: string): Promise<{ accountId: string | null } | null> {
  return clientOf(db).oidcRecord.findUnique({ where: { model_id: { model: "Session", id } }, select: { accountId: true } });
}

/**
 * Deletes the account's sessions except the one stored under any of
 * `keepIds` (the stored forms of the current session's id); returns how many.
 */
export async function deleteOtherSessions(db: Queryable, accountId: string, keepIds: readonly string[]): Promise<number> {
  const { count } = await clientOf(db).oidcRecord.deleteMany({ where: { model: "Session", accountId, NOT: { id: { in: [...keepIds] } } } });
  return count;
}
