/**
 * Queries on oidc-provider Session rows (OidcRecord, model "Session"). A
 * session's row id is the keyed hash of its cookie value (see
 * crypto/stored-ids.ts): it is what operators see and revoke by.
 */
import type { Tx } from "./database.ts";

export interface SessionSummary {
  id: string;
  createdAt: Date;
  expiresAt: Date | null;
}

export async function listSessionsOfAccount(tx: Tx, accountId: string, now = new Date()): Promise<SessionSummary[]> {
  return tx.oidcRecord.findMany({
    where: { model: "Session", accountId, OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] },
    select: { id: true, createdAt: true, expiresAt: true },
    orderBy: { createdAt: "desc" },
  });
}

/**
 * Deletes the account's sessions except the one stored under any of
 * `keepIds` (the stored forms of the current session's id); returns how many.
 */
export async function deleteOtherSessions(tx: Tx, accountId: string, keepIds: readonly string[]): Promise<number> {
  const { count } = await tx.oidcRecord.deleteMany({ where: { model: "Session", accountId, NOT: { id: { in: [...keepIds] } } } });
  return count;
}
